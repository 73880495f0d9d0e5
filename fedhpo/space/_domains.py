"""The values params take together: whether a condition can hold, and the grid's distinct configs.

A comparison with a constant is true or false on each side of it, so a numeric param's range
splits, at the constants its conditions mention, into pieces where every comparison keeps
its truth: one value per piece (on the param's step grid, if it has one) stands for them all.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from fedhpo.errors import SearchSpaceError
from fedhpo.space._conditions import AnyCondition, is_number
from fedhpo.space._params import MAX_GRID, CategoricalParam, FloatParam, IntParam, Param, as_decimal

MAX_COMBINATIONS = 10_000
"""Most combinations of representative values tried when checking that a condition can hold;
past it the condition's comparisons are only checked one by one."""


Lattice = tuple[Decimal, Decimal, int]
"""``(low, step, last k)`` of a param taking the values ``low + k * step``, k = 0..last."""


def _lattice(param: FloatParam | IntParam) -> Lattice | None:
    """The param's step grid; None for a continuous float param."""
    if param.step is None:
        return None
    low, step = as_decimal(param.low), as_decimal(param.step)
    return low, step, int((as_decimal(param.high) - low) / step)


def _point(param: FloatParam | IntParam, grid: Lattice, k: int) -> float | int:
    """The grid's ``k``-th value as a trial gets it (a float's clean decimal)."""
    value = grid[0] + k * grid[1]
    return int(value) if isinstance(param, IntParam) else float(value)


def _at(param: FloatParam | IntParam, c: float) -> list[Any]:
    """The param's value equal to ``c``, if it takes one."""
    grid = _lattice(param)
    if grid is None:
        return [float(c)] if param.low <= c <= param.high else []
    k = (as_decimal(c) - grid[0]) / grid[1]
    if k != k.to_integral_value() or not 0 <= k <= grid[2]:
        return []
    value = _point(param, grid, int(k))
    return [value] if value == c else []


def _between(param: FloatParam | IntParam, a: float, b: float) -> list[Any]:
    """A value the param takes strictly between ``a`` and ``b`` (either may be infinite)."""
    grid = _lattice(param)
    if grid is None:
        lo, hi = max(a, param.low), min(b, param.high)
        tries = (param.low, param.high, (lo + hi) / 2 if lo < hi else lo)
        return [x for x in tries if a < x < b and param.low <= x <= param.high][:1]
    first = 0
    if a != -math.inf:
        below = ((as_decimal(a) - grid[0]) / grid[1]).to_integral_value(ROUND_FLOOR)
        first = max(0, int(below))
    for k in range(first, min(first + 3, grid[2] + 1)):  # a float's decimal may round either way
        value = _point(param, grid, k)
        if a < value:
            return [value] if value < b else []
    return []


def representatives(param: Param, constants: set[float]) -> list[Any]:
    """Values of ``param`` on which every comparison with ``constants`` takes each truth value
    it can: every choice of a categorical param; for a numeric one a value at each constant
    it takes and one inside each piece between them."""
    if isinstance(param, CategoricalParam):
        return list(param.choices)
    cuts = sorted(constants)
    out = [v for c in cuts for v in _at(param, c)]
    for a, b in zip([-math.inf, *cuts], [*cuts, math.inf], strict=True):
        out += _between(param, a, b)
    return out


def _number(value: float) -> str:
    return f"{value:g}" if float(f"{value:g}") == value else repr(value)


def values_text(param: FloatParam | IntParam) -> str:
    """The values a numeric param takes, e.g. ``1, 3, 5``, ``8, 16, ..., 128 (steps of 8)``
    or ``[0, 1]``."""
    grid = _lattice(param)
    if grid is None:
        return param.domain()
    if grid[2] < 6:
        return ", ".join(_number(_point(param, grid, k)) for k in range(grid[2] + 1))
    first, second, end = (_number(_point(param, grid, k)) for k in (0, 1, grid[2]))
    return f"{first}, {second}, ..., {end} (steps of {grid[1].normalize():f})"


def constants(conditions: Sequence[AnyCondition]) -> dict[str, set[float]]:
    """The numbers each parent is compared with in ``conditions``, by parent name."""
    out: dict[str, set[float]] = {}
    for cond in conditions:
        for leaf in cond.leaves():
            values = leaf.value if leaf.op == "in" else (leaf.value,)
            out.setdefault(leaf.parent, set()).update(v for v in values if is_number(v))
    return out


def ancestors(cond: AnyCondition, by_name: Mapping[str, Param]) -> set[str]:
    """The params ``cond`` reads, and the params their conditions read, and so on."""
    out: set[str] = set()
    todo = list(cond.parents)
    while todo:
        name = todo.pop()
        if name in out or name not in by_name:
            continue
        out.add(name)
        parent_cond = by_name[name].condition
        if parent_cond is not None:
            todo.extend(parent_cond.parents)
    return out


def can_hold(cond: AnyCondition, params: Sequence[Param]) -> bool | None:
    """Whether ``cond`` holds for some values of the ``params`` (in dependency order) it reads,
    each active only when its own condition holds; None if there are too many combinations
    to try."""
    by_name = {p.name: p for p in params}
    names = ancestors(cond, by_name)
    involved = [p for p in params if p.name in names]
    cuts = constants([cond, *(p.condition for p in involved if p.condition is not None)])
    reps = [representatives(p, cuts.get(p.name, set())) for p in involved]
    if math.prod(len(r) for r in reps) > MAX_COMBINATIONS:
        return None
    for combo in itertools.product(*reps):
        values: dict[str, Any] = {}
        for p, v in zip(involved, combo, strict=True):
            if p.condition is None or p.condition.holds(values):
                values[p.name] = v
        if cond.holds(values):
            return True
    return False


# ---------------------------------------------------------------- the grid's distinct configs


def _grids(params: Sequence[Param]) -> dict[str, list[Any]]:
    grids = {}
    for p in params:
        try:
            grids[p.name] = p.grid_values()
        except SearchSpaceError as exc:
            raise SearchSpaceError(
                f"the grid sampler must enumerate every param: {exc.message}; "
                "or pick another tuner.sampler",
                key=f"params.{p.name}.{exc.key}",
            ) from None
    return grids


def _branches(
    params: Sequence[Param], grids: Mapping[str, list[Any]]
) -> Iterator[tuple[dict[str, Any], list[Param]]]:
    """Each assignment of the params that conditions read (parents), with the other params
    active under it. Parents come first in a dependency order, so this walks only them."""
    read = set().union(*(p.condition.parents for p in params if p.condition is not None))
    parents = [p for p in params if p.name in read]
    others = [p for p in params if p.name not in read]

    def walk(i: int, values: dict[str, Any]) -> Iterator[tuple[dict[str, Any], list[Param]]]:
        if i == len(parents):
            yield (
                dict(values),
                [p for p in others if p.condition is None or p.condition.holds(values)],
            )
            return
        p = parents[i]
        if p.condition is not None and not p.condition.holds(values):
            yield from walk(i + 1, values)
            return
        for v in grids[p.name]:
            yield from walk(i + 1, {**values, p.name: v})

    yield from walk(0, {})


def grid_size(params: Sequence[Param]) -> int:
    """How many distinct configs of active params the grid has (``params`` in dependency
    order); a SearchSpaceError if a param has no finite grid (key ``params.<name>.<field>``)
    or the grid is past :data:`MAX_GRID` (key ``tuner.sampler``)."""
    grids = _grids(params)
    size = 0
    for _, active in _branches(params, grids):
        size += math.prod(len(grids[p.name]) for p in active)
        if size > MAX_GRID:
            raise SearchSpaceError(
                f"the grid has more than {MAX_GRID} points; use coarser steps, fewer params or "
                "another sampler",
                key="tuner.sampler",
            )
    return size


def grid_configs(params: Sequence[Param]) -> list[dict[str, Any]]:
    """Every distinct config of active params, as ``{name: value}`` in ``params``' order
    (a param whose condition is off is absent and adds no point)."""
    grids = _grids(params)
    order = {p.name: i for i, p in enumerate(params)}
    out = []
    for values, active in _branches(params, grids):
        for combo in itertools.product(*(grids[p.name] for p in active)):
            config = {**values, **{p.name: v for p, v in zip(active, combo, strict=True)}}
            out.append(dict(sorted(config.items(), key=lambda item: order[item[0]])))
    return out
