"""Sampler factory ("what to try"); the pruner ("when to stop") is built with the fidelity."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import optuna

from fedhpo.errors import SearchSpaceError
from fedhpo.space import SAMPLERS, CleanSteps, ConfigGridSampler
from fedhpo.tune._distinct import DistinctSampler

STARTUP = 4
"""Random trials before TPE models the results (the fidelity check's 4 configs count)."""


# Optuna's samplers put a stepped float at low + k * step in binary (0.30000000000000004);
# these store the step grid's decimal (0.3) instead. The grid's values are already clean.
class _Distinct(CleanSteps, DistinctSampler):
    pass


class _Random(CleanSteps, optuna.samplers.RandomSampler):
    pass


class _GP(CleanSteps, optuna.samplers.GPSampler):
    pass


class _CmaEs(CleanSteps, optuna.samplers.CmaEsSampler):
    pass


class _QMC(CleanSteps, optuna.samplers.QMCSampler):
    pass


_SAMPLERS: dict[str, Callable[[int, dict[str, list[Any]]], optuna.samplers.BaseSampler]] = {
    # TPE exploits its few best results hard; repeats of a config already tried are redrawn
    "tpe": lambda seed, _: _Distinct(
        optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True, constant_liar=True, n_startup_trials=STARTUP
        ),
        seed=seed,
    ),
    "random": lambda seed, _: _Random(seed=seed),
    "gp": lambda seed, _: _GP(seed=seed),
    "cmaes": lambda seed, _: _CmaEs(seed=seed, warn_independent_sampling=False),
    "qmc": lambda seed, _: _QMC(seed=seed, warn_independent_sampling=False),
    # each distinct config of active params once, in the same order in every worker
    "grid": lambda seed, grid: ConfigGridSampler(grid, seed=seed),
}


def make_sampler(
    name: str, seed: int, *, grid: dict[str, list[Any]] | None = None
) -> optuna.samplers.BaseSampler:
    """A seeded Optuna sampler by name; ``grid`` is the value grid for ``grid``."""
    if name not in _SAMPLERS:
        raise SearchSpaceError(
            f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}", key="tuner.sampler"
        )
    # TPE's multivariate/group/constant_liar and the QMC sampler are "experimental" in Optuna.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return _SAMPLERS[name](seed, grid or {})
        except ImportError as exc:
            raise SearchSpaceError(
                f"sampler {name!r} needs an extra package ({exc}); "
                "install it with: pip install 'fedhpo[samplers]'",
                key="tuner.sampler",
            ) from None
