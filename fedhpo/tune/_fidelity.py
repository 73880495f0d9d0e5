"""Fidelity in one place: how far a trial runs, when it may be stopped, and the full run.

A trial's run config is the base config, then the space's fidelity, then the trial's
parameters (:func:`trial_config`); the run the search is for is the base config with the
parameters only (:func:`full_config`). Trials report validation to the pruner every
``report_every`` rounds; the test set is scored once, at the end, unless an objective is a
test metric (then on the base config's ``federation.eval_every``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna

from fedhpo.config import RunConfig
from fedhpo.errors import SearchSpaceError
from fedhpo.metrics import TEST_METRICS
from fedhpo.space import PRUNERS, SearchSpace
from fedhpo.tune._halving import SAMPLE, CurveHalving, rungs

#: Rungs grow by this factor (successive halving and Hyperband).
REDUCTION = 3

#: Without calibration the first rung is this share of the trials' rounds.
DEFAULT_MIN_SHARE = 1 / 9


@dataclass(frozen=True)
class Schedule:
    """How far trials run (``rounds``) and from when the pruner may stop them."""

    rounds: int
    """Rounds a trial runs unless pruned."""
    full_rounds: int
    """Rounds of the base config: the full fidelity."""
    min_rounds: int
    """The pruner's first rung."""
    report_every: int
    pruner: str

    @property
    def reaches_full(self) -> bool:
        """True if a trial that is not pruned runs at full fidelity."""
        return self.rounds >= self.full_rounds

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _on_report(value: int, every: int, rounds: int) -> int:
    """``value`` moved up to a reporting round (at most ``rounds``)."""
    return min(rounds, max(every, -(-value // every) * every))


def schedule(space: SearchSpace, min_rounds: int | None = None) -> Schedule:
    """The space's schedule; ``min_rounds`` (from calibration) fills an unset first rung."""
    fid, full = space.fidelity, space.base.federation.rounds
    rounds = fid.rounds or full
    every = fid.report_every or 1
    first = fid.min_rounds or min_rounds or max(1, round(rounds * DEFAULT_MIN_SHARE))
    pruner = space.tuner.pruner or "none"
    return Schedule(rounds, full, _on_report(first, every, rounds), every, pruner)


def judged_after(sched: Schedule) -> int:
    """The round after which the pruner has judged a trial at every rung, and at least a third
    of the trials' rounds: a trial stopped by the budget later than that has earned a
    comparison with the complete trials at the round it reached (see
    :func:`fedhpo.store.leaderboard`)."""
    first, rounds, every = sched.min_rounds, sched.rounds, sched.report_every
    last = 0
    if sched.pruner == "successive_halving":
        last = max(rungs(first, rounds, REDUCTION, every), default=0)
    elif sched.pruner == "hyperband":  # rungs at first * REDUCTION**k below the last round
        last = first
        while last * REDUCTION < rounds:
            last *= REDUCTION
    elif sched.pruner == "median":  # judges every report after its warm-up
        last = first
    return max(last, rounds // 3)


def trial_config(space: SearchSpace, params: dict[str, Any], sched: Schedule) -> RunConfig:
    """The run config of a trial: base, fidelity, parameters; test scored at the end only
    unless an objective needs it during the run."""
    config = space.config_for({**params, "federation.rounds": sched.rounds})
    if not any(o.metric in TEST_METRICS for o in space.objectives):
        config = config.with_values({"federation.eval_every": config.federation.rounds})
    return config


def full_config(base: RunConfig, params: dict[str, Any], seed: int | None = None) -> RunConfig:
    """The full-fidelity config of a trial's parameters (optionally with another seed).

    The low-fidelity settings of the space are not applied: this is the run the search was for.
    """
    values: dict[str, Any] = dict(params)
    if seed is not None:
        values["seed"] = seed
    return base.with_values(values)


def make_pruner(sched: Schedule, trials: int | None = None) -> optuna.pruners.BasePruner:
    """The pruner over rounds: steps are round numbers, reported every ``report_every``.

    A search of a fixed number of ``trials`` stops at most a quarter of them at the first
    rung for successive halving's sample (see :mod:`fedhpo.tune._halving`), so that a short
    search still completes trials.
    """
    name, first, every = sched.pruner, sched.min_rounds, sched.report_every
    if name == "successive_halving":
        sample = SAMPLE if trials is None else min(SAMPLE, trials // 4)
        return CurveHalving(first, sched.rounds, REDUCTION, every, sample)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=first, max_resource=sched.rounds, reduction_factor=REDUCTION
        )
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=5, n_warmup_steps=first, interval_steps=every
        )
    if name == "none":
        return optuna.pruners.NopPruner()
    raise SearchSpaceError(
        f"unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}", key="tuner.pruner"
    )
