"""fedhpo's search-space format: objective, fidelity, tuner and ``params`` with ``when`` conditions."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

from fedhpo.config import RunConfig
from fedhpo.errors import SearchSpaceError
from fedhpo.space._conditions import OPS, AnyCondition, Condition, Or, all_of
from fedhpo.space._params import PARAM_TYPES, CategoricalParam, FloatParam, IntParam, Param
from fedhpo.space._settings import Fidelity, Objective, TunerSpec
from fedhpo.space._space import SearchSpace

TOP_KEYS = ("base", "objective", "fidelity", "tuner", "params")
"""Top-level keys of a fedhpo search-space file."""

_NUMERIC_KEYS = ("type", "low", "high", "log", "step", "when")
_PARAM_KEYS = {
    "float": _NUMERIC_KEYS,
    "int": _NUMERIC_KEYS,
    "categorical": ("type", "choices", "when"),
}


def err(key: str, message: str) -> SearchSpaceError:
    """A SearchSpaceError at ``key`` (a dotted path into the file)."""
    return SearchSpaceError(message, key=key)


@contextmanager
def under(prefix: str) -> Iterator[None]:
    """Prefix the key of any SearchSpaceError raised inside with ``prefix``."""
    try:
        yield
    except SearchSpaceError as exc:
        raise exc.located(key_prefix=prefix) from None


def mapping(value: Any, key: str, example: str) -> Mapping[Any, Any]:
    """``value`` if it is a mapping, else an error showing ``example``."""
    if not isinstance(value, Mapping):
        raise err(key, f"must be a mapping, got {value!r}; e.g. {example}")
    return value


def known(spec: Mapping[Any, Any], valid: Sequence[str], key: str) -> None:
    """Unknown keys in ``spec`` are errors that list the valid ones."""
    for k in spec:
        if k not in valid:
            where = f"{key}.{k}" if key else str(k)
            raise err(where, f"unknown key {k!r}; valid keys here: {', '.join(valid)}")


def _objectives(value: Any) -> tuple[Objective, ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise err("objective", "the list is empty; e.g. objective: {metric: val_accuracy}")
    out = []
    for i, item in enumerate(items):
        key = f"objective[{i}]" if isinstance(value, list) else "objective"
        if isinstance(item, str):
            item = {"metric": item}
        item = mapping(item, key, "{metric: val_accuracy, direction: maximize}")
        known(item, ("metric", "direction"), key)
        if "metric" not in item:
            raise err(key, "missing metric; e.g. {metric: val_accuracy}")
        with under(key):
            out.append(Objective(item["metric"], item.get("direction")))
    return tuple(out)


def _settings(cls: type, value: Any, key: str, example: str) -> Any:
    spec = mapping(value, key, example)
    known(spec, [f.name for f in fields(cls)], key)
    with under(key):
        return cls(**spec)


def _when(value: Any, key: str) -> AnyCondition:
    if not isinstance(value, Mapping) or not value:
        raise err(
            key,
            f"must map parent params to values, got {value!r}; "
            "e.g. when: {server.optimizer: adam} or {server.optimizer: {in: [adam, yogi]}}",
        )
    parts: list[AnyCondition] = []
    for parent, test in value.items():
        here = f"{key}.{parent}"
        if parent == "any":
            if not isinstance(test, list) or not test:
                raise err(here, "`any` takes a list of conditions, one of which must hold")
            parts.append(Or(tuple(_when(t, f"{here}[{i}]") for i, t in enumerate(test))))
        elif isinstance(test, Mapping) and test:
            for op, operand in test.items():
                if op not in OPS:
                    raise err(
                        f"{here}.{op}", f"unknown condition op {op!r}; use one of: {', '.join(OPS)}"
                    )
                with under(f"{here}.{op}"):
                    parts.append(Condition(parent, op, operand))
        else:
            with under(here):
                parts.append(Condition(parent, "equal", test))
    return all_of(parts)


def _param(name: Any, spec: Any, key: str) -> Param:
    if not isinstance(name, str) or not name:
        raise err("params", f"param names are dotted config paths like client.lr, got {name!r}")
    if isinstance(spec, list):
        with under(key):
            return CategoricalParam(name, tuple(spec))
    spec = mapping(spec, key, "{type: float, low: 0.001, high: 1.0, log: true}")
    kind = spec.get("type", "categorical" if "choices" in spec else None)
    if not isinstance(kind, str) or kind not in PARAM_TYPES:
        hint = " (FederatedScope's `cate` is `categorical` here)" if kind == "cate" else ""
        if kind is None and spec and all(isinstance(v, Mapping) for v in spec.values()):
            first = next(iter(spec))
            hint = f"; params are keyed by dotted paths, e.g. `{name}.{first}:`, not nested"
        raise err(f"{key}.type", f"type must be float, int or categorical, got {kind!r}{hint}")
    known(spec, _PARAM_KEYS[kind], key)
    for required in ("choices",) if kind == "categorical" else ("low", "high"):
        if required not in spec:
            raise err(key, f"a {kind} param needs `{required}`; add it")
    condition = _when(spec["when"], f"{key}.when") if "when" in spec else None
    with under(key):
        if kind == "categorical":
            return CategoricalParam(name, spec["choices"], condition)
        cls = FloatParam if kind == "float" else IntParam
        step = spec.get("step")
        if step is None and cls is IntParam:
            step = 1
        return cls(name, spec["low"], spec["high"], spec.get("log", False), step, condition)


def _params(value: Any) -> tuple[Param, ...]:
    spec = mapping(value, "params", "{client.lr: {type: float, low: 0.001, high: 1.0}}")
    if not spec:
        raise err("params", "no params; add at least one, e.g. client.lr: {type: float, ...}")
    return tuple(_param(name, s, f"params.{name}") for name, s in spec.items())


def parse_fedhpo(
    data: Mapping[Any, Any], source: str, base: RunConfig, base_path: Path | None
) -> SearchSpace:
    """Build a space from a fedhpo-format mapping; errors carry key paths into the file."""
    known(data, TOP_KEYS, "")
    if "params" not in data:
        raise err("params", "missing `params`; add e.g. params: {client.lr: {type: float, ...}}")
    objectives: tuple[Objective, ...] = (Objective(),)
    if data.get("objective") is not None:
        objectives = _objectives(data["objective"])
    fidelity, tuner = Fidelity(), TunerSpec()
    if data.get("fidelity") is not None:
        fidelity = _settings(Fidelity, data["fidelity"], "fidelity", "{rounds: 20}")
    if data.get("tuner") is not None:
        tuner = _settings(TunerSpec, data["tuner"], "tuner", "{sampler: tpe, trials: 30}")
    return SearchSpace(
        params=_params(data["params"]),
        objectives=objectives,
        fidelity=fidelity,
        tuner=tuner,
        base=base,
        base_path=base_path,
        source=source,
        format="fedhpo",
    )
