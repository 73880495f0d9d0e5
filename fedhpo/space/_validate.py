"""Whole-space checks: params fit the run config, conditions are sound, tuner fits objectives."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from fedhpo.config import FieldInfo, RunConfig, field_info
from fedhpo.errors import ConfigError, SearchSpaceError
from fedhpo.space._aliases import FS_ALIASES
from fedhpo.space._conditions import AnyCondition, Condition, is_number
from fedhpo.space._params import (
    MAX_GRID,
    CategoricalParam,
    FloatParam,
    IntParam,
    Param,
    choice_key,
)
from fedhpo.space._settings import (
    DEFAULT_BUDGET,
    DEFAULT_PROMOTE,
    DEFAULT_TRIALS,
    Fidelity,
    Objective,
    TunerSpec,
)


def apply_values(base: RunConfig, values: Mapping[str, Any]) -> RunConfig:
    """``base`` with dotted ``values`` set (:meth:`RunConfig.with_values`'s one rule)."""
    return base.with_values(values)


def _err(key: str, message: str) -> SearchSpaceError:
    return SearchSpaceError(message, key=key)


def _pkey(name: str) -> str:
    return f"params.{name}"


# ---------------------------------------------------------------- params against the config


def _field(param: Param) -> FieldInfo:
    try:
        return field_info(param.name)
    except ConfigError as exc:
        hint = ""
        target = FS_ALIASES.get(param.name)
        if target:
            hint = f"; FederatedScope's `{param.name}` is `{target}` in fedhpo"
        raise _err(
            _pkey(param.name),
            f"not a run-config field (`{exc.key}`: {exc.message}){hint}",
        ) from None


def _takes(info: FieldInfo) -> str:
    if info.kind == "choice":
        return "one of " + " | ".join(str(c) for c in info.choices)
    return {"str": "a string", "bool": "true or false"}.get(info.kind, info.kind)


def _fit_choice(value: Any, info: FieldInfo, key: str) -> Any:
    name = info.path
    if value is None:
        if info.optional or info.kind == "any":
            return None
        raise _err(key, f"choice null is not allowed: `{name}` takes {_takes(info)}")
    if info.kind == "float" and is_number(value):
        return float(value)
    if info.kind == "int":
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        if is_number(value) and isinstance(value, int):
            return value
    ok = {
        "any": lambda v: True,
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "choice": lambda v: isinstance(v, str) and v in info.choices,
    }.get(info.kind)
    if ok is not None and ok(value):
        return value
    wanted = {"float": "a number", "int": "an integer"}.get(info.kind, _takes(info))
    raise _err(key, f"choice {value!r} does not fit `{name}`, which takes {wanted}; remove it")


def _fit(param: Param) -> Param:
    info = _field(param)
    key = _pkey(param.name)
    if info.kind == "any":
        return param
    if isinstance(param, CategoricalParam):
        choices = tuple(_fit_choice(c, info, f"{key}.choices") for c in param.choices)
        return dataclasses.replace(param, choices=choices)
    if info.kind == "float" or (info.kind == "int" and isinstance(param, IntParam)):
        return param
    if info.kind == "int":
        raise _err(f"{key}.type", f"`{param.name}` is an integer field; use type: int")
    raise _err(
        f"{key}.type",
        f"`{param.name}` takes {_takes(info)}, not a {param.kind}; "
        "use type: categorical with choices it accepts",
    )


def _probes(param: Param) -> list[tuple[str, Any]]:
    if isinstance(param, CategoricalParam):
        return [("choices", c) for c in param.choices]
    return [("low", param.low), ("high", param.high)]


def _check_one(param: Param, field: str, value: Any, base: RunConfig) -> None:
    try:
        apply_values(base, {param.name: value})
    except ConfigError as exc:
        raise _err(
            f"{_pkey(param.name)}.{field}",
            f"the run config rejects {value!r} for `{param.name}` "
            f"({exc.key}: {exc.message}); keep the range to values it accepts",
        ) from None


def _check_bounds(params: Sequence[Param], base: RunConfig) -> None:
    """Each bound / choice must be accepted by the run config. Probes of different params are
    batched into one config build; only a failing batch is re-checked param by param."""
    probes = [_probes(p) for p in params]
    for i in range(max(len(ps) for ps in probes)):
        batch = [(p, ps[i]) for p, ps in zip(params, probes, strict=True) if i < len(ps)]
        try:
            apply_values(base, {p.name: value for p, (_, value) in batch})
        except ConfigError:
            for p, (field, value) in batch:
                _check_one(p, field, value, base)


# ---------------------------------------------------------------- conditions and their order


def _check_leaf(leaf: Condition, child: str, params: Mapping[str, Param]) -> None:
    key = f"{_pkey(child)}.when.{leaf.parent}"
    parent = params.get(leaf.parent)
    if leaf.parent == child:
        raise _err(key, f"`{child}` cannot depend on itself; remove this condition")
    if parent is None:
        raise _err(
            key,
            f"`{leaf.parent}` is not a param of this space, so the condition can never hold; "
            f"add it to params or use one of: {', '.join(params)}",
        )
    values = leaf.value if leaf.op == "in" else (leaf.value,)
    if isinstance(parent, CategoricalParam):
        if leaf.op in ("less", "greater"):
            if not all(is_number(c) for c in parent.choices):
                raise _err(
                    key,
                    f"`{leaf.op}` needs a numeric parent, but `{parent.name}` has choices "
                    f"{parent.domain()}; use equal, not_equal or in",
                )
            if not any(leaf.holds({parent.name: c}) for c in parent.choices):
                raise _err(
                    key,
                    f"no choice of `{parent.name}` ({parent.domain()}) is {leaf.op} than "
                    f"{leaf.value!r}, so the condition would never hold",
                )
            return
        known = {choice_key(c) for c in parent.choices}
        for v in values:
            if choice_key(v) not in known:
                raise _err(
                    key,
                    f"{v!r} is not one of `{parent.name}`'s choices ({parent.domain()}); "
                    "the condition would never hold",
                )
        return
    for v in values:
        if not is_number(v):
            raise _err(key, f"`{parent.name}` is numeric; compare it with a number, not {v!r}")
    if isinstance(parent, (FloatParam, IntParam)) and not _can_hold(leaf, parent.low, parent.high):
        shown = list(leaf.value) if leaf.op == "in" else leaf.value
        raise _err(
            key,
            f"`{parent.name}` is in [{parent.low:g}, {parent.high:g}], so `{leaf.op} {shown}` "
            "would never hold; compare it with a value in its range",
        )


def _can_hold(leaf: Condition, low: float, high: float) -> bool:
    """Whether a parent ranging over [low, high] can satisfy ``leaf`` (a numeric op)."""
    if leaf.op == "greater":
        return bool(high > leaf.value)
    if leaf.op == "less":
        return bool(low < leaf.value)
    if leaf.op == "equal":
        return bool(low <= leaf.value <= high)
    if leaf.op == "in":
        return any(low <= v <= high for v in leaf.value)
    return not low == high == leaf.value  # not_equal


def _cycle(pending: list[Param]) -> list[str]:
    by_name = {p.name: p for p in pending}
    path = [pending[0].name]
    while True:
        cond = by_name[path[-1]].condition
        assert cond is not None
        nxt = sorted(n for n in cond.parents if n in by_name)[0]
        if nxt in path:
            return path[path.index(nxt) :] + [nxt]
        path.append(nxt)


def _order(params: Sequence[Param]) -> tuple[Param, ...]:
    """Parents before children, otherwise in the given order; cycles are errors."""
    done: set[str] = set()
    out: list[Param] = []
    pending = list(params)
    while pending:
        waiting = []
        for p in pending:
            if p.condition is None or p.condition.parents <= done:
                out.append(p)
                done.add(p.name)
            else:
                waiting.append(p)
        if len(waiting) == len(pending):
            cycle = _cycle(pending)
            raise _err(
                f"{_pkey(cycle[0])}.when",
                f"conditions form a cycle ({' -> '.join(cycle)}); "
                "a param can only depend on params that do not depend on it",
            )
        pending = waiting
    return tuple(out)


def _check_conditions(params: Sequence[Param]) -> None:
    by_name = {p.name: p for p in params}
    for p in params:
        cond: AnyCondition | None = p.condition
        if cond is not None:
            for leaf in cond.leaves():
                _check_leaf(leaf, p.name, by_name)


# ---------------------------------------------------------------- the whole space


def _fidelity_base(base: RunConfig, fidelity: Fidelity, searched: set[str]) -> RunConfig:
    full = base.federation.rounds
    for key in ("rounds", "min_rounds"):
        rounds = getattr(fidelity, key)
        if rounds is not None and rounds > full and "federation.rounds" not in searched:
            raise _err(
                f"fidelity.{key}",
                f"{rounds} rounds is more than the full run's {full} (the base config's "
                "federation.rounds); a trial runs at most the full run",
            )
    if not fidelity.overrides():
        return base
    try:
        return apply_values(base, fidelity.overrides())
    except ConfigError as exc:
        setting = fidelity.setting_of(exc.key or "") or "rounds"
        raise _err(
            f"fidelity.{setting}",
            f"the base run config rejects this fidelity ({exc.key}: {exc.message})",
        ) from None


def _check_tuner(
    tuner: TunerSpec, objectives: tuple[Objective, ...], params: tuple[Param, ...]
) -> TunerSpec:
    multi = len(objectives) > 1
    if tuner.pruner is None:
        tuner = dataclasses.replace(tuner, pruner="none" if multi else "successive_halving")
    if multi and tuner.pruner != "none":
        raise _err(
            "tuner.pruner",
            f"Optuna cannot prune a study with {len(objectives)} objectives; "
            "set pruner: none or keep one objective",
        )
    if multi and tuner.sampler == "cmaes":
        raise _err(
            "tuner.sampler",
            "cmaes optimizes a single objective; use tpe, random, gp, qmc or grid",
        )
    if tuner.sampler == "grid":
        size = 1
        for p in params:
            try:
                size *= len(p.grid_values())
            except SearchSpaceError as exc:
                raise _err(
                    f"{_pkey(p.name)}.{exc.key}",
                    f"the grid sampler must enumerate every param: {exc.message}; "
                    "or pick another tuner.sampler",
                ) from None
        if size > MAX_GRID:
            raise _err(
                "tuner.sampler",
                f"the grid has {size} points; use coarser steps, fewer params or another sampler",
            )
        if tuner.trials is None:
            tuner = dataclasses.replace(tuner, trials=size)
    if tuner.trials is None and tuner.budget is None:
        if multi:
            tuner = dataclasses.replace(tuner, trials=DEFAULT_TRIALS)
        else:
            tuner = dataclasses.replace(tuner, budget=DEFAULT_BUDGET)
    if tuner.promote is None:
        tuner = dataclasses.replace(tuner, promote=0 if multi else DEFAULT_PROMOTE)
    if multi and tuner.promote:
        raise _err("tuner.promote", "promotion needs a single objective; set promote: 0")
    return tuner


def _check_objectives(objectives: Any) -> tuple[Objective, ...]:
    objectives = tuple(objectives) if isinstance(objectives, (list, tuple)) else (objectives,)
    if not objectives or not all(isinstance(o, Objective) for o in objectives):
        raise _err("objective", f"give at least one Objective, got {objectives!r}")
    metrics = [o.metric for o in objectives]
    for m in metrics:
        if metrics.count(m) > 1:
            raise _err("objective", f"metric {m} is listed twice; remove one")
    return objectives


def check_space(
    params: Any,
    objectives: Any,
    fidelity: Fidelity,
    tuner: TunerSpec,
    base: RunConfig,
) -> tuple[tuple[Param, ...], tuple[Objective, ...], TunerSpec]:
    """Validate a whole space; return params (fitted, in dependency order), objectives, tuner."""
    if not isinstance(params, (list, tuple)) or not params:
        raise _err("params", "the space has no params; add some, e.g. client.lr")
    for p in params:
        if not isinstance(p, (FloatParam, IntParam, CategoricalParam)):
            raise _err("params", f"expected FloatParam, IntParam or CategoricalParam, got {p!r}")
    names = [p.name for p in params]
    for name in names:
        if names.count(name) > 1:
            raise _err(_pkey(name), f"`{name}` is listed twice; keep one")
    if not isinstance(fidelity, Fidelity) or not isinstance(tuner, TunerSpec):
        raise _err("fidelity", "fidelity must be a Fidelity and tuner a TunerSpec")
    if not isinstance(base, RunConfig):
        raise _err("base", f"the base must be a RunConfig, got {type(base).__name__}")
    objectives = _check_objectives(objectives)
    if "time_to_accuracy" in [o.metric for o in objectives] and (
        base.federation.target_accuracy is None
    ):
        raise _err(
            "objective",
            "time_to_accuracy needs federation.target_accuracy in the base config "
            "(the validation accuracy to reach)",
        )
    trial_base = _fidelity_base(base, fidelity, {p.name for p in params})
    fitted = []
    for p in params:
        setting = fidelity.setting_of(p.name)
        if setting is not None:
            raise _err(
                _pkey(p.name),
                f"`{p.name}` is also fixed by fidelity.{setting}; remove one of them",
            )
        fitted.append(_fit(p))
    _check_bounds(fitted, trial_base)
    _check_conditions(fitted)
    ordered = _order(fitted)
    return ordered, objectives, _check_tuner(tuner, objectives, ordered)
