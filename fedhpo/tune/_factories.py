"""Sampler ("what to try") and pruner ("when to stop") factories, kept independent."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import optuna

from fedhpo.errors import SearchSpaceError

SAMPLERS = ("tpe", "random", "gp", "cmaes", "qmc", "grid")
PRUNERS = ("hyperband", "successive_halving", "median", "none")

_SAMPLERS: dict[str, Callable[[int, dict[str, list[Any]]], optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed, _: optuna.samplers.TPESampler(
        seed=seed, multivariate=True, group=True, constant_liar=True
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


def make_pruner(name: str, rounds: int, eval_every: int = 1) -> optuna.pruners.BasePruner:
    """A pruner over rounds (steps are round numbers, reported every ``eval_every`` rounds)."""
    first = eval_every
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=first, max_resource=rounds, reduction_factor=3
        )
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=first, reduction_factor=3)
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=5, n_warmup_steps=max(first, rounds // 4), interval_steps=eval_every
        )
    if name == "none":
        return optuna.pruners.NopPruner()
    raise SearchSpaceError(
        f"unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}", key="tuner.pruner"
    )
