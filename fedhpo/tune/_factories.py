"""Sampler factory ("what to try"); the pruner ("when to stop") is built with the fidelity."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import optuna

from fedhpo.errors import SearchSpaceError
from fedhpo.space import SAMPLERS
from fedhpo.tune._distinct import DistinctSampler

STARTUP = 4
"""Random trials before TPE models the results (the fidelity check's 4 configs count)."""

_SAMPLERS: dict[str, Callable[[int, dict[str, list[Any]]], optuna.samplers.BaseSampler]] = {
    # TPE exploits its few best results hard; repeats of a config already tried are redrawn
    "tpe": lambda seed, _: DistinctSampler(
        optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True, constant_liar=True, n_startup_trials=STARTUP
        ),
        seed=seed,
    ),
    "random": lambda seed, _: optuna.samplers.RandomSampler(seed=seed),
    "gp": lambda seed, _: optuna.samplers.GPSampler(seed=seed),
    "cmaes": lambda seed, _: optuna.samplers.CmaEsSampler(
        seed=seed, warn_independent_sampling=False
    ),
    "qmc": lambda seed, _: optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False),
    "grid": lambda seed, grid: optuna.samplers.GridSampler(grid, seed=seed),
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
