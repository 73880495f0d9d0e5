"""Optuna bridge: suggest a trial's values, distributions, clean step values, the grid search."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.trial import BaseTrial, FrozenTrial

from fedhpo.errors import SearchSpaceError
from fedhpo.space._domains import grid_configs
from fedhpo.space._params import snap_to_step
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


def _clean(distribution: BaseDistribution, value: Any) -> Any:
    if isinstance(distribution, FloatDistribution) and distribution.step is not None:
        return snap_to_step(value, distribution.low, distribution.step)
    return value


class CleanSteps(optuna.samplers.BaseSampler):
    """Mixin for an Optuna sampler (``class S(CleanSteps, optuna.samplers.TPESampler)``): a
    float on a step grid comes back as its clean decimal (:func:`snap_to_step`), so a trial
    stores and exports 0.3, not the 0.30000000000000004 Optuna's samplers compute."""

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        values = super().sample_relative(study, trial, search_space)  # type: ignore[safe-super]
        return {name: _clean(search_space[name], v) for name, v in values.items()}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        value = super().sample_independent(  # type: ignore[safe-super]
            study, trial, param_name, param_distribution
        )
        return _clean(param_distribution, value)


class Grid(dict[str, list[Any]]):
    """Every param's grid values by name, and ``configs``: the points a grid search runs,
    each distinct config of active params once (a param whose condition is off adds none);
    without ``configs``, every combination of the values."""

    def __init__(
        self, values: Mapping[str, list[Any]], configs: Sequence[Mapping[str, Any]] | None = None
    ) -> None:
        super().__init__(values)
        if configs is None:
            configs = [{}]
            for name, options in values.items():
                configs = [{**c, name: v} for c in configs for v in options]
        self.configs = [dict(c) for c in configs]


def grid_search_space(space: SearchSpace) -> Grid:
    """Every param's values by name and, as ``.configs``, the distinct configs of active
    params in the order :class:`ConfigGridSampler` runs them (shuffled by ``tuner.seed``, so
    the same in every worker and session). Float params need a step."""
    try:
        configs = grid_configs(space.params)
    except SearchSpaceError as exc:
        raise SearchSpaceError(exc.message, key=exc.key, source=space.source) from None
    random.Random(space.tuner.seed).shuffle(configs)
    return Grid({p.name: p.grid_values() for p in space.params}, configs)


class ConfigGridSampler(optuna.samplers.GridSampler):
    """Optuna's GridSampler over a :class:`Grid`'s configs, each run once.

    Optuna's own runs every combination of the value lists, so a param whose condition is
    off made copies of a config, in an order shuffled by ``seed``, which differs by worker
    and session, so grid ids meant other configs in each. Here grid id ``i`` is
    ``grid.configs[i]`` everywhere (the trial numbered ``i`` runs it); ``seed`` only picks
    among the configs left once trial numbers pass the grid's size.
    """

    def __init__(self, grid: Mapping[str, list[Any]], seed: int | None = None) -> None:
        grid = grid if isinstance(grid, Grid) else Grid(grid)
        super().__init__({}, seed=seed)
        # the attributes GridSampler's methods read (optuna 5), set to the configs
        names = sorted(grid)
        self._search_space = {name: list(grid[name]) for name in names}
        self._param_names = names
        self._all_grids = [tuple(config.get(n) for n in names) for config in grid.configs]
        self._n_min_trials = len(self._all_grids)
