"""What a full run costs, counted without running it: the unit of a search's budget."""

from __future__ import annotations

import random

import pytest
import yaml
from optuna.trial import TrialState

from fedhpo.config import config_from_dict
from fedhpo.sim.sampling import sample_cohort
from fedhpo.space import load_space
from fedhpo.tune import cached_dataset, full_config, run_costs, run_steps
from fedhpo.tune._budget import BudgetGuard
from fedhpo.tune._objective import simulate
from tests.helpers import BASE, LR_MU


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"client.local_epochs": 3, "client.batch_size": 5},
        {"federation.clients_per_round": 7, "seed": 3},
        {"client.local_steps": 4},
    ],
)
def test_run_steps_are_the_steps_a_run_takes(values) -> None:
    config = config_from_dict(yaml.safe_load(BASE)).with_values({"federation.rounds": 5, **values})
    dataset = cached_dataset(config.data)
    assert run_steps(config, dataset) == simulate(config).steps
    # the same as summing each round's cohort (what run_steps counted before it cached
    # how many rounds each client trains in)
    fed, hp = config.federation, config.client
    size = fed.cohort_size(dataset.num_clients)
    if hp.local_steps is None:
        per_client = hp.local_epochs * -(-dataset.train_sizes // hp.batch_size)
    else:
        per_client = [hp.local_steps if n else 0 for n in dataset.train_sizes]
    by_round = sum(
        int(sum(per_client[c] for c in sample_cohort(config.seed, r, dataset.num_clients, size)))
        for r in range(1, fed.rounds + 1)
    )
    assert run_steps(config, dataset) == by_round


def _space(tmp_path, params: str):
    (tmp_path / "base.yaml").write_text(BASE)
    path = tmp_path / "space.yaml"
    path.write_text("base: base.yaml\nobjective: {metric: val_accuracy}\nparams:\n" + params)
    return load_space(path)


def test_run_costs_are_in_full_runs_of_the_base_config(tmp_path) -> None:
    space = _space(tmp_path, "  client.local_epochs: {type: int, low: 1, high: 3}\n" + LR_MU)
    dataset = cached_dataset(space.base.data)
    costs = run_costs(space, dataset, draws=12)
    assert costs is not None and costs.varies and costs.draws == 12
    # a run's steps are proportional to its local epochs, and the base config has 1
    assert (costs.low, costs.high) == (1.0, 3.0)
    assert 1.0 < costs.mean < 3.0
    full = run_steps(space.base, dataset)
    epochs3 = run_steps(full_config(space.base, {"client.local_epochs": 3}), dataset)
    assert epochs3 == 3 * full
    assert costs.describe(" runs").startswith("1-3 runs; ")


def test_run_costs_do_not_vary_with_learning_rates(tmp_path) -> None:
    space = _space(tmp_path, LR_MU)
    costs = run_costs(space, cached_dataset(space.base.data))
    assert costs is not None and not costs.varies
    assert costs.low == costs.mean == costs.high == 1.0


class _Trial:
    """What :class:`BudgetGuard` reads and writes of a trial and its study, in memory."""

    def __init__(self, study: list[_Trial], number: int, state: TrialState) -> None:
        self.study, self.number, self.state, self.user_attrs = self, number, state, {}
        self.trials = study
        study.append(self)

    def set_user_attr(self, key: str, value: object) -> None:
        self.user_attrs[key] = value

    def get_trials(self, deepcopy: bool = False) -> list[_Trial]:
        return self.trials


@pytest.mark.parametrize("jobs", [2, 4, 8])
def test_jobs_sharing_a_budget_stop_within_about_a_round_each_of_it(jobs: int) -> None:
    # Each guard wrote its trial's steps and reread the others' every fiftieth of the
    # budget, so jobs running side by side overshot by up to two fiftieths each (2% of the
    # budget with 2 jobs, 6% with 4, 14% with 8): a promotion reserve then fell short of the
    # base config's seeds. Near the end of the budget the guards check more often.
    trials: list[_Trial] = []
    _Trial(trials, 0, TrialState.COMPLETE)  # a search stops running trials once it has one
    limit = 100_000
    per_round = [7 + 3 * j for j in range(jobs)]  # jobs spending at different rates
    guards = [BudgetGuard(_Trial(trials, n + 1, TrialState.RUNNING), limit) for n in range(jobs)]
    order = random.Random(jobs)
    for seed_round in range(1, 10**6):
        running = [j for j, g in enumerate(guards) if g.reason is None]
        if not running:
            break
        order.shuffle(running)  # the jobs' rounds interleave in any order
        for j in running:
            guards[j](seed_round, per_round[j])
    spent = sum(g.own for g in guards)
    assert limit <= spent <= limit + jobs * max(per_round)
