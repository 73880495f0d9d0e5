"""Compute budgets, counted in client local SGD steps: what a search may spend and has spent.

One full-run equivalent is the steps of one full-fidelity run of the base config, so "a
budget of 10" means the compute of ten full runs, however it is split into short trials,
pruned trials, calibration and promotion re-runs.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import optuna

from fedhpo.config import RunConfig
from fedhpo.sim.data import FederatedDataset
from fedhpo.sim.sampling import sample_cohort
from fedhpo.store import records as rec


def run_steps(config: RunConfig, dataset: FederatedDataset) -> int:
    """Client local steps a run of ``config`` takes if it completes (no run needed)."""
    fed, hp = config.federation, config.client
    if config.data.fraction < 1.0:
        dataset = dataset.with_fraction(config.data.fraction)
    n = dataset.train_sizes
    if hp.local_steps is not None:
        per_client = np.where(n > 0, hp.local_steps, 0)
    else:
        per_client = hp.local_epochs * -(-n // hp.batch_size)
    size = fed.cohort_size(dataset.num_clients)
    return int(
        sum(per_client[sample_cohort(config.seed, r, dataset.num_clients, size)].sum()
            for r in range(1, fed.rounds + 1))
    )  # fmt: skip


def spent_steps(study: optuna.Study, before: Collection[int] = ()) -> int:
    """Steps of the study's trials, leaving out the trial numbers in ``before``."""
    return sum(
        rec.trial_steps(t) for t in study.get_trials(deepcopy=False) if t.number not in before
    )


class BudgetCallback:
    """Stops ``study.optimize`` once the trials since ``before`` spent ``limit`` steps."""

    def __init__(self, limit: int, before: Collection[int]) -> None:
        self.limit = limit
        self.before = frozenset(before)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if spent_steps(study, self.before) >= self.limit:
            study.stop()
