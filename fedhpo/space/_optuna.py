"""Optuna bridge: suggest a trial's values, distributions, and the grid for GridSampler."""

from __future__ import annotations

from typing import Any

from optuna.distributions import BaseDistribution
from optuna.trial import BaseTrial

from fedhpo.errors import SearchSpaceError
from fedhpo.space._space import SearchSpace


def suggest(space: SearchSpace, trial: BaseTrial) -> dict[str, Any]:
    """Suggest every active param (parents first); returns ``{dotted path: value}``.

    A param whose condition does not hold is not suggested, so it is absent from the result
    and from ``trial.params``; the run keeps the base config's value for it.
    """
    values: dict[str, Any] = {}
    for param in space.params:
        if param.condition is None or param.condition.holds(values):
            values[param.name] = param.suggest(trial)
    return values


def distributions(space: SearchSpace) -> dict[str, BaseDistribution]:
    """The Optuna distribution of every param (active or not), by name."""
    return {p.name: p.distribution() for p in space.params}


def grid_search_space(space: SearchSpace) -> dict[str, list[Any]]:
    """Every param's values, for ``optuna.samplers.GridSampler``; float params need a step."""
    grid: dict[str, list[Any]] = {}
    for p in space.params:
        try:
            grid[p.name] = p.grid_values()
        except SearchSpaceError as exc:
            raise SearchSpaceError(
                exc.message, key=f"params.{p.name}.{exc.key}", source=space.source
            ) from None
    return grid
