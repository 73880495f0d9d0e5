"""Hypothesis: any input gives a SearchSpace or a SearchSpaceError, never another exception."""

from __future__ import annotations

import math
from typing import Any

import optuna
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedhpo._yaml import parse_yaml
from fedhpo.errors import ConfigError, SearchSpaceError
from fedhpo.space import (
    FS_ALIASES,
    METRICS,
    OPS,
    PRUNERS,
    SAMPLERS,
    SearchSpace,
    parse_space,
    suggest,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

PATHS = [
    "client.lr",
    "client.mu",
    "client.momentum",
    "client.local_epochs",
    "client.local_steps",
    "client.batch_size",
    "server.optimizer",
    "server.beta1",
    "federation.rounds",
    "federation.clients_per_round",
    "federation.client_fraction",
    "data.fraction",
    "data.name",
    "data.partition.method",
    "model.options.hidden",
    "model.options",
    "client",
    "seed",
    "nope.nope",
    *list(FS_ALIASES)[:6],
    "model.dropout",
]
WORDS = [
    "base", "objective", "fidelity", "tuner", "params", "type", "low", "high", "log", "step",
    "choices", "when", "any", "lower", "upper", "q", "default_value", "child", "parent",
    "value", "metric", "direction", "rounds", "clients_per_round", "client_fraction",
    "data_fraction", "eval_every", "sampler", "pruner", "trials", "timeout", "seed",
    "condition1", "condition_x", "float", "int", "categorical", "cate", "and", "or",
    "maximize", "minimize", "sgd", "adam", "", "nothere.yaml", ".",
    *OPS, *METRICS, *SAMPLERS, *PRUNERS,
]  # fmt: skip

keys = st.one_of(st.sampled_from(WORDS + PATHS), st.text(max_size=8), st.integers(-2, 2), st.none())
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 70),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0, 1e-4, 1e400 if False else 1e300, -1.0]),
    st.sampled_from(WORDS + PATHS),
    st.text(max_size=6),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=12,
)

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parse(data: Any) -> SearchSpace | None:
    try:
        return parse_space(data)
    except SearchSpaceError as exc:
        assert exc.message  # a message the user can act on
        str(exc)
        return None


@SETTINGS
@given(st.dictionaries(keys, values, max_size=6))
def test_any_mapping(data: dict[Any, Any]) -> None:
    _parse(data)


@SETTINGS
@given(values)
def test_any_value(data: Any) -> None:
    _parse(data)


small = st.one_of(st.integers(-1, 8), st.sampled_from([0.0, 1e-3, 0.1, 0.25, 0.5, 0.9, 1.0, 2.0]))
choice_values = st.one_of(small, st.sampled_from(["sgd", "adam", "yogi", "iid", None, True]))
tests_ = st.one_of(
    choice_values,
    st.dictionaries(
        st.sampled_from([*OPS, "eq"]),
        st.one_of(choice_values, st.lists(choice_values, max_size=3)),
        min_size=1,
        max_size=2,
    ),
)
when = st.dictionaries(st.sampled_from(PATHS[:10]), tests_, min_size=1, max_size=2)


@st.composite
def targeted(draw: st.DrawFn) -> dict[str, Any]:
    """A param spec that is often valid, sometimes subtly not."""
    kind = draw(st.sampled_from(["float", "int", "categorical"]))
    out: dict[str, Any] = {"type": kind}
    if kind == "categorical":
        out["choices"] = draw(st.lists(choice_values, max_size=4))
    else:
        a, b = draw(small), draw(small)
        out["low"], out["high"] = (min(a, b), max(a, b)) if draw(st.booleans()) else (a, b)
        if draw(st.booleans()):
            out["log"] = draw(st.booleans())
        if draw(st.integers(0, 3)) == 0:
            out["step"] = draw(st.sampled_from([0.1, 0.25, 1, 2]))
    if draw(st.integers(0, 2)) == 0:
        out["when"] = draw(when)
    return out


spec = st.one_of(
    targeted(),
    st.dictionaries(
        st.sampled_from(["type", "low", "high", "log", "step", "choices", "when"]),
        values,
        max_size=6,
    ),
)
fedhpo_files = st.fixed_dictionaries(
    {
        "params": st.dictionaries(
            st.sampled_from(PATHS), st.one_of(spec, targeted(), targeted(), values), max_size=4
        )
    },
    optional={
        "objective": st.one_of(
            values,
            st.sampled_from(list(METRICS)),
            st.lists(st.sampled_from(list(METRICS)), max_size=3),
        ),
        "tuner": st.dictionaries(
            st.sampled_from(["sampler", "pruner", "trials", "timeout", "seed"]),
            st.one_of(values, st.sampled_from([*SAMPLERS, *PRUNERS]), small),
        ),
        "fidelity": st.dictionaries(
            st.sampled_from(["rounds", "clients_per_round", "client_fraction", "data_fraction"]),
            st.one_of(values, small),
        ),
    },
)


@SETTINGS
@given(fedhpo_files)
def test_fedhpo_shaped(data: dict[str, Any]) -> None:
    _parse(data)


fs_spec = st.dictionaries(
    st.sampled_from(["type", "lower", "upper", "log", "choices", "q", "default_value"]),
    values,
    max_size=5,
)
fs_cond = st.dictionaries(st.sampled_from(["type", "child", "parent", "value"]), values, max_size=4)
fs_files = st.dictionaries(
    st.one_of(st.sampled_from(PATHS), st.sampled_from(["condition1", "condition2"])),
    st.one_of(fs_spec, fs_cond, st.lists(scalars, max_size=4)),
    max_size=5,
)


@SETTINGS
@given(fs_files)
def test_fs_shaped(data: dict[str, Any]) -> None:
    _parse(data)


@SETTINGS
@given(st.one_of(fedhpo_files, fs_files))
def test_through_yaml_text(data: dict[str, Any]) -> None:
    try:
        text = yaml.safe_dump(data)
    except yaml.YAMLError:
        return
    try:
        doc = parse_yaml(text, "space.yaml", SearchSpaceError)
    except SearchSpaceError:
        return
    _parse(doc)


# ------------------------------------------------------------- valid spaces behave

floats = st.floats(0.0, 0.95, allow_nan=False).map(lambda x: round(x, 3))
float_params = st.tuples(
    st.sampled_from(["client.mu", "client.momentum", "server.beta1"]), floats, floats, st.booleans()
)
int_params = st.tuples(
    st.sampled_from(["client.local_epochs", "client.batch_size", "federation.rounds"]),
    st.integers(1, 40),
    st.integers(1, 40),
    st.booleans(),
)
conditions = st.one_of(
    st.none(),
    st.sampled_from(
        [
            {"server.optimizer": "sgd"},
            {"server.optimizer": {"in": ["adam", "yogi"]}},
            {"server.optimizer": {"not_equal": "adam"}},
            {"client.lr": {"less": 0.1}},
            {"client.lr": {"greater": 0.01}, "server.optimizer": "adam"},
            {"any": [{"client.lr": {"less": 0.05}}, {"server.optimizer": "yogi"}]},
        ]
    ),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.one_of(float_params, int_params), conditions), max_size=4),
    st.integers(0, 2**31),
)
def test_parsed_spaces_suggest_valid_configs(items: list[Any], seed: int) -> None:
    params: dict[str, Any] = {
        "server.optimizer": ["sgd", "adam", "yogi"],
        "client.lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True},
    }
    for (name, a, b, log), when in items:
        kind = "float" if isinstance(a, float) else "int"
        spec: dict[str, Any] = {"type": kind, "low": min(a, b), "high": max(a, b)}
        if log and min(a, b) > 0:
            spec["log"] = True
        if when is not None:
            spec["when"] = when
        params[name] = spec
    space = _parse({"params": params})
    if space is None:
        assert any(min(a, b) == max(a, b) for (_, a, b, _), _ in items)
        return
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(3):
        trial = study.ask()
        values = suggest(space, trial)
        assert values == trial.params
        for p in space.params:
            assert (p.name in values) == (p.condition is None or p.condition.holds(values))
        try:
            space.config_for(values)
        except ConfigError as exc:  # pragma: no cover - a failure here is a bug
            raise AssertionError(f"suggested {values} but the config rejects it: {exc}") from exc
        assert all(math.isfinite(v) for v in values.values() if isinstance(v, float))
        study.tell(trial, 0.0)
