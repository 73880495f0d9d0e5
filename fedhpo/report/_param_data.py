"""Pure builders over trial parameters: value tables, importances and contour grids."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from fedhpo.report._data import finite, primary

CONTOUR_RESOLUTION = 40


@dataclass(frozen=True)
class ParamSpec:
    """How a parameter was searched: float/int (with bounds and log scale) or categorical."""

    name: str
    kind: str  # "float" | "int" | "categorical"
    log: bool = False
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class ParamsData:
    """Complete trials' parameters (None where a conditional param was absent) and values."""

    metric: str
    direction: str
    specs: list[ParamSpec]
    trials: list[int]
    values: list[float]
    columns: dict[str, list[Any]]


@dataclass(frozen=True)
class ImportanceData:
    """Normalized parameter importances, most important first; or why there are none."""

    metric: str
    importances: dict[str, float]
    note: str | None = None


@dataclass(frozen=True)
class ContourData:
    """The objective interpolated over a grid of the two most important parameters.

    Grid and point coordinates are in parameter units (a categorical's choice index);
    ``z[j][i]`` is the value at ``(grid_x[i], grid_y[j])``.
    """

    metric: str
    direction: str
    x: ParamSpec | None = None
    y: ParamSpec | None = None
    grid_x: list[float] = field(default_factory=list)
    grid_y: list[float] = field(default_factory=list)
    z: list[list[float]] = field(default_factory=list)
    trials: list[int] = field(default_factory=list)
    points_x: list[float] = field(default_factory=list)
    points_y: list[float] = field(default_factory=list)
    points_value: list[float] = field(default_factory=list)
    note: str | None = None


def _spec(name: str, dist: optuna.distributions.BaseDistribution) -> ParamSpec:
    if isinstance(dist, CategoricalDistribution):
        return ParamSpec(name=name, kind="categorical", choices=tuple(dist.choices))
    kind = "int" if isinstance(dist, IntDistribution) else "float"
    if isinstance(dist, (FloatDistribution, IntDistribution)):
        return ParamSpec(name=name, kind=kind, log=dist.log, low=dist.low, high=dist.high)
    return ParamSpec(name=name, kind=kind)


def _complete(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials with a finite first objective value."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [t for t in trials if t.values and finite(t.values[0])]


def params_data(study: optuna.Study) -> ParamsData:
    """One column per parameter over the complete trials, with their first objective."""
    metric, direction = primary(study)
    trials = _complete(study)
    specs: dict[str, ParamSpec] = {}
    for t in trials:
        for name, dist in t.distributions.items():
            specs.setdefault(name, _spec(name, dist))
    names = sorted(specs)
    return ParamsData(
        metric=metric,
        direction=direction,
        specs=[specs[n] for n in names],
        trials=[t.number for t in trials],
        values=[float(t.values[0]) for t in trials],
        columns={n: [t.params.get(n) for t in trials] for n in names},
    )


def varying(data: ParamsData) -> list[str]:
    """Parameters that take at least two different values across the complete trials."""
    return [
        name
        for name, column in data.columns.items()
        if len({repr(v) for v in column if v is not None}) > 1
    ]


def importance_data(study: optuna.Study) -> ImportanceData:
    """optuna.importance.get_param_importances on the first objective, when it can say
    something: at least two complete trials and one parameter that varied."""
    data = params_data(study)
    if len(data.trials) < 2:
        note = f"needs at least 2 complete trials; this study has {len(data.trials)}"
        return ImportanceData(metric=data.metric, importances={}, note=note)
    if not varying(data):
        note = "no parameter took more than one value across the complete trials"
        return ImportanceData(metric=data.metric, importances={}, note=note)
    target = None
    if len(study.directions) > 1:  # PED-ANOVA rates params for *low* target values
        sign = -1.0 if data.direction == "maximize" else 1.0
        target = lambda t: sign * t.values[0]  # noqa: E731
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*low `target` values")
            raw = optuna.importance.get_param_importances(study, target=target)
    except (ValueError, RuntimeError, ImportError) as exc:
        note = f"Optuna could not assess importances: {exc}"
        return ImportanceData(metric=data.metric, importances={}, note=note)
    ordered = dict(sorted(raw.items(), key=lambda kv: (-kv[1], kv[0])))
    return ImportanceData(metric=data.metric, importances=ordered)


def _coord(spec: ParamSpec, value: Any) -> float:
    """A parameter value on the axis the grid is built in (log10, choice index or itself)."""
    if spec.kind == "categorical":
        return float(spec.choices.index(value))
    return math.log10(value) if spec.log else float(value)


def _uncoord(spec: ParamSpec, coord: float) -> float:
    return 10.0**coord if spec.log else coord


def _axis(spec: ParamSpec, coords: list[float], resolution: int) -> list[float]:
    if spec.kind == "categorical":
        return [float(i) for i in range(len(spec.choices))]
    if spec.low is not None and spec.high is not None:
        lo, hi = _coord(spec, spec.low), _coord(spec, spec.high)
    else:
        lo, hi = min(coords), max(coords)
    return [float(c) for c in np.linspace(lo, hi, resolution)]


def idw_grid(
    px: list[float], py: list[float], pv: list[float], gx: list[float], gy: list[float]
) -> list[list[float]]:
    """Inverse-distance-weighted (power 2) interpolation of points onto a grid, in
    coordinates scaled to the grid's extent; ``out[j][i]`` is at ``(gx[i], gy[j])``."""
    sx = (max(gx) - min(gx)) or 1.0
    sy = (max(gy) - min(gy)) or 1.0
    x, y = np.asarray(px) / sx, np.asarray(py) / sy
    v = np.asarray(pv, dtype=float)
    xs = np.asarray(gx)[:, None] / sx
    out = []
    for row in gy:  # one grid row at a time: memory grows with the trials, not grid x trials
        d2 = (xs - x) ** 2 + (row / sy - y) ** 2
        exact = d2 < 1e-18
        weights = 1.0 / np.where(exact, 1.0, d2)
        z = (weights * v).sum(-1) / weights.sum(-1)
        hit = exact.any(-1)
        z[hit] = (exact * v).sum(-1)[hit] / exact.sum(-1)[hit]
        out.append(z.tolist())
    return out


def contour_data(
    study: optuna.Study,
    importance: ImportanceData | None = None,
    resolution: int = CONTOUR_RESOLUTION,
) -> ContourData:
    """The first objective over the two most important varying parameters (log10 grid for
    log-scaled ones), interpolated from the complete trials."""
    data = params_data(study)
    importance = importance or importance_data(study)
    moving = set(varying(data))
    ranked = [n for n in importance.importances if n in moving] or sorted(moving)
    if len(ranked) < 2:
        note = "needs two parameters that varied across the complete trials"
        return ContourData(metric=data.metric, direction=data.direction, note=note)
    specs = {s.name: s for s in data.specs}
    sx, sy = specs[ranked[0]], specs[ranked[1]]
    xs, ys = data.columns[sx.name], data.columns[sy.name]
    rows = [
        (n, _coord(sx, a), _coord(sy, b), v)
        for n, a, b, v in zip(data.trials, xs, ys, data.values, strict=True)
        if a is not None and b is not None
    ]
    if len(rows) < 2:
        note = f"needs 2 complete trials that set both {sx.name} and {sy.name}"
        return ContourData(metric=data.metric, direction=data.direction, note=note)
    trials, cx, cy, values = (list(col) for col in zip(*rows, strict=True))
    gx, gy = _axis(sx, cx, resolution), _axis(sy, cy, resolution)
    return ContourData(
        metric=data.metric,
        direction=data.direction,
        x=sx,
        y=sy,
        grid_x=[_uncoord(sx, c) for c in gx],
        grid_y=[_uncoord(sy, c) for c in gy],
        z=idw_grid(cx, cy, values, gx, gy),
        trials=trials,
        points_x=[_uncoord(sx, c) for c in cx],
        points_y=[_uncoord(sy, c) for c in cy],
        points_value=values,
    )
