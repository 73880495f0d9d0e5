"""Compute budgets, counted in client local SGD steps: what a search may spend and has spent
(the limit itself is shared by all workers through the study's budget, ``store._budget``).

One full-run equivalent is the steps of one full-fidelity run of the base config, so "a
budget of 10" means the compute of ten full runs, however it is split into short trials,
pruned trials, calibration and promotion re-runs.

A budget stops new trials from starting and, through :class:`BudgetGuard`, stops the
trials that are running when it is spent: a budget of 6 is 6 full runs, with one job or
many, not 6 plus whatever the jobs were running at the time.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import optuna

from fedhpo.config import RunConfig
from fedhpo.errors import FedhpoError
from fedhpo.sim.data import FederatedDataset
from fedhpo.sim.sampling import sample_cohort
from fedhpo.space import SearchSpace
from fedhpo.store import records as rec
from fedhpo.store.budget import load_budget
from fedhpo.tune._calibrate import design
from fedhpo.tune._fidelity import full_config


def run_steps(config: RunConfig, dataset: FederatedDataset) -> int:
    """Client local steps a run of ``config`` takes if it completes (no run needed)."""
    fed, hp = config.federation, config.client
    dataset = dataset.at_fraction(config.data.fraction)
    n = dataset.train_sizes
    if hp.local_steps is not None:
        per_client = np.where(n > 0, hp.local_steps, 0)
    else:
        per_client = hp.local_epochs * -(-n // hp.batch_size)
    size = fed.cohort_size(dataset.num_clients)
    return int((per_client * _rounds_in(config.seed, fed.rounds, dataset.num_clients, size)).sum())


@functools.lru_cache(maxsize=64)
def _rounds_in(seed: int, rounds: int, num_clients: int, cohort_size: int) -> np.ndarray:
    """How many of the run's rounds each client trains in (the cohorts depend on these only)."""
    counts = np.zeros(num_clients, dtype=np.int64)
    for r in range(1, rounds + 1):
        counts[sample_cohort(seed, r, num_clients, cohort_size)] += 1
    counts.setflags(write=False)
    return counts


@dataclass(frozen=True)
class RunCosts:
    """What a full run of the space's configs costs, in full runs of the base config (the
    unit of a budget), over ``draws`` configs spread across the space."""

    low: float
    mean: float
    high: float
    draws: int

    @property
    def varies(self) -> bool:
        """True unless every config drawn costs what the base config costs."""
        return max(abs(self.low - 1.0), abs(self.high - 1.0)) > 0.005

    def describe(self, unit: str = "") -> str:
        """The range (then ``unit``) and the mean: "0.36-4; 1.61 on average over 256 configs
        drawn across the space"."""
        return (
            f"{self.low:.2g}-{self.high:.2g}{unit}; {self.mean:.2f} on average over "
            f"{self.draws} configs drawn across the space"
        )


def run_costs(space: SearchSpace, dataset: FederatedDataset, draws: int = 256) -> RunCosts | None:
    """The cost of a full run of ``draws`` Latin-hypercube configs of the space, relative to
    the base config's (local epochs, batch size, cohort and rounds change it; learning rates
    do not). None if no config drawn can be built (the search reports why)."""
    full = run_steps(space.base, dataset)
    costs = []
    for point in design(space, draws, space.tuner.seed):
        try:
            costs.append(run_steps(full_config(space.base, point), dataset) / full)
        except (FedhpoError, ValueError):
            continue
    if not costs or full <= 0:
        return None
    return RunCosts(min(costs), sum(costs) / len(costs), max(costs), len(costs))


def spent_steps(study: optuna.Study, before: Collection[int] = ()) -> int:
    """Steps of the study's trials, leaving out the trial numbers in ``before``."""
    return sum(
        rec.trial_steps(t) for t in study.get_trials(deepcopy=False) if t.number not in before
    )


class BudgetGuard:
    """Stops a running trial once the study's trials together have taken its step budget.

    Called after each round with the round's metrics (``steps``: client steps of the round).
    It keeps the trial's own steps and, every ``1/checks`` of the budget, writes them on the
    trial (so other workers count a running trial's compute) and rereads the others'. With
    one job it stops within a round of the budget; with several, each job may run on for
    about two check intervals (what the others had not written yet, and what they did since
    it last read) and a round before it sees that the budget is spent.

    A search hands back an answer: while the study has no complete trial, a running trial
    goes on past the budget (a budget smaller than the first rung's sample and one full
    run would otherwise end with nothing to export).
    """

    def __init__(self, trial: optuna.Trial, limit: int, checks: int = 50) -> None:
        self.trial = trial
        self.limit = limit
        self.interval = max(1, limit // checks)
        self.own = 0
        self.answered = False
        """True once the study is seen to hold a complete trial."""
        self.others = self._others()
        self.next_check = self.interval
        self.reason: str | None = None

    @classmethod
    def of(cls, trial: optuna.Trial) -> BudgetGuard | None:
        """The guard of the study's step budget (None if the study has none)."""
        budget = load_budget(trial.study)
        return None if budget is None or budget.steps is None else cls(trial, budget.steps)

    def __call__(self, round_: int, steps: int) -> bool:
        """Add a round's ``steps``; True (with ``reason`` set) if the budget is now spent."""
        self.own += steps
        if self.own >= self.next_check:
            self.trial.set_user_attr(rec.STEPS, self.own)
            self.others = self._others()
            self.next_check = self.own + self.interval
        total = self.others + self.own
        if total < self.limit or not self.answered:
            return False
        self.reason = (
            f"stopped at round {round_}: the search's budget is spent ({total} of "
            f"{self.limit} client steps, {self.own} of them this trial's)"
        )
        return True

    def _others(self) -> int:
        trials = self.trial.study.get_trials(deepcopy=False)
        self.answered = any(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
        return sum(rec.trial_steps(t) for t in trials if t.number != self.trial.number)
