"""Sampler ("what to try") and pruner ("when to stop") factories, kept independent."""

from __future__ import annotations

import warnings
from typing import Any

import optuna

from fedhpo.errors import SearchSpaceError

SAMPLERS = ("tpe", "random", "gp", "cmaes", "qmc", "grid")
PRUNERS = ("hyperband", "successive_halving", "median", "none")


def make_sampler(
    name: str, seed: int, *, grid: dict[str, list[Any]] | None = None
) -> optuna.samplers.BaseSampler:
    """A seeded Optuna sampler by name; ``grid`` is the value grid for ``grid``."""
    try:
        if name == "tpe":
            with warnings.catch_warnings():  # multivariate/group/constant_liar are "experimental"
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.samplers.TPESampler(
                    seed=seed, multivariate=True, group=True, constant_liar=True
                )
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "gp":
            return optuna.samplers.GPSampler(seed=seed)
        if name == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if name == "qmc":
            return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
        if name == "grid":
            return optuna.samplers.GridSampler(grid or {}, seed=seed)
    except ImportError as exc:
        raise SearchSpaceError(
            f"sampler {name!r} needs an extra package ({exc}); "
            "install it with: pip install 'fedhpo[samplers]'",
            key="tuner.sampler",
        ) from None
    raise SearchSpaceError(
        f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}", key="tuner.sampler"
    )


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
