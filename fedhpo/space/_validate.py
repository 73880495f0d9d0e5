"""Whole-space checks: params fit the run config, conditions are sound, tuner fits objectives."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from fedhpo.config import FieldInfo, RunConfig, field_info
from fedhpo.errors import ConfigError, SearchSpaceError
from fedhpo.space._aliases import FS_ALIASES
from fedhpo.space._condition_checks import check_conditions
from fedhpo.space._conditions import is_number
from fedhpo.space._domains import grid_size
from fedhpo.space._params import (
    CategoricalParam,
    FloatParam,
    IntParam,
    Param,
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


def _check_not_fixed(name: str, fidelity: Fidelity) -> None:
    """A param may not be a run-config value the fidelity sets for every trial."""
    setting = fidelity.setting_of(name)
    if setting is None:
        return
    if fidelity.path_of(setting) == name:
        raise _err(_pkey(name), f"`{name}` is also fixed by fidelity.{setting}; remove one of them")
    raise _err(
        _pkey(name),
        f"`{name}` and fidelity.{setting} both set the cohort size (a run takes "
        f"clients_per_round or client_fraction, not both); trials take the cohort from "
        f"fidelity.{setting}, so this param would never change a trial: "
        f"remove the param, or remove fidelity.{setting} to search the cohort at full fidelity",
    )


def _check_report_every(base: RunConfig, fidelity: Fidelity) -> None:
    """Reports must come before a trial's last round, or the pruner can never stop one."""
    every = fidelity.report_every
    rounds = fidelity.rounds or base.federation.rounds
    if every is None or every == 1 or every < rounds:
        return
    where = "fidelity.rounds" if fidelity.rounds else "the base config's federation.rounds"
    raise _err(
        "fidelity.report_every",
        f"a trial reports to the pruner every {every} rounds but runs {rounds} ({where}), so "
        "the pruner would only see the last round and never stop a trial; set report_every "
        f"to at most {max(1, rounds - 1)}, e.g. 1",
    )


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
        size = grid_size(params)
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
    _check_report_every(base, fidelity)
    fitted = []
    for p in params:
        _check_not_fixed(p.name, fidelity)
        fitted.append(_fit(p))
    _check_bounds(fitted, trial_base)
    ordered = check_conditions(fitted)
    return ordered, objectives, _check_tuner(tuner, objectives, ordered)
