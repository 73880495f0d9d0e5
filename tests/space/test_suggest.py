"""The Optuna bridge: suggest() with FixedTrial and real studies, distributions, the grid."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FixedTrial

from fedhpo.errors import SearchSpaceError
from fedhpo.space import (
    CategoricalParam,
    CleanSteps,
    Condition,
    ConfigGridSampler,
    FloatParam,
    IntParam,
    SearchSpace,
    distributions,
    grid_search_space,
    load_space,
    snap_to_step,
    suggest,
)

from .conftest import FIXTURES

optuna.logging.set_verbosity(optuna.logging.WARNING)

FEDOPT = """
params:
  server.optimizer: {type: categorical, choices: [sgd, adam, yogi]}
  server.momentum: {type: float, low: 0.0, high: 0.9, when: {server.optimizer: sgd}}
  server.beta1: {type: float, low: 0.8, high: 0.95, when: {server.optimizer: {in: [adam, yogi]}}}
  client.lr: {type: float, low: 1.0e-3, high: 1.0, log: true}
  client.local_epochs: {type: int, low: 1, high: 5}
  client.batch_size: [16, 32]
"""


def test_fixed_trial_condition_on(space_of) -> None:
    space = space_of(FEDOPT)
    params = {
        "server.optimizer": "sgd",
        "server.momentum": 0.5,
        "client.lr": 0.01,
        "client.local_epochs": 2,
        "client.batch_size": 32,
    }
    assert suggest(space, FixedTrial(params)) == params


def test_fixed_trial_condition_off_skips_the_child(space_of) -> None:
    space = space_of(FEDOPT)
    trial = FixedTrial(
        {
            "server.optimizer": "adam",
            "server.beta1": 0.9,
            "client.lr": 0.01,
            "client.local_epochs": 2,
            "client.batch_size": 16,
            "server.momentum": 0.5,  # present but inactive: must not be asked for
        }
    )
    values = suggest(space, trial)
    assert "server.momentum" not in values and "server.momentum" not in trial.params
    assert values["server.beta1"] == 0.9


def test_study_respects_conditions_and_types(space_of) -> None:
    space = space_of(FEDOPT)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []

    def objective(trial: optuna.Trial) -> float:
        values = suggest(space, trial)
        seen.append(values)
        space.config_for(values)  # every suggestion is a valid run config
        return values["client.lr"]

    study.optimize(objective, n_trials=40)
    for trial, values in zip(study.trials, seen, strict=True):
        assert trial.params == values
        sgd = trial.params["server.optimizer"] == "sgd"
        assert ("server.momentum" in trial.params) == sgd
        assert ("server.beta1" in trial.params) == (not sgd)
        assert isinstance(trial.params["client.local_epochs"], int)
        assert 1e-3 <= trial.params["client.lr"] <= 1.0
        assert trial.distributions["client.lr"] == FloatDistribution(1e-3, 1.0, log=True)
    assert {t.params["server.optimizer"] for t in study.trials} == {"sgd", "adam", "yogi"}


def test_suggest_follows_dependency_order() -> None:
    # declared child-first; parents must still be suggested first
    space = SearchSpace(
        params=(
            FloatParam("client.mu", 0.0, 1.0, condition=Condition("client.lr", "less", 0.5)),
            FloatParam(
                "client.lr", 0.01, 1.0, condition=Condition("server.optimizer", "equal", "sgd")
            ),
            CategoricalParam("server.optimizer", ("sgd", "adam")),
        )
    )
    order: list[str] = []

    class Recorder(FixedTrial):
        def _suggest(self, name, distribution):  # type: ignore[no-untyped-def]
            order.append(name)
            return super()._suggest(name, distribution)

    values = suggest(
        space, Recorder({"server.optimizer": "sgd", "client.lr": 0.1, "client.mu": 0.3})
    )
    assert order == ["server.optimizer", "client.lr", "client.mu"]
    assert values == {"server.optimizer": "sgd", "client.lr": 0.1, "client.mu": 0.3}
    off = suggest(space, FixedTrial({"server.optimizer": "sgd", "client.lr": 0.9}))
    assert off == {"server.optimizer": "sgd", "client.lr": 0.9}  # mu's condition is off


def test_fs_nested_condition_in_a_study() -> None:
    space = load_space(FIXTURES / "fs_fedprox.yaml")
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(lambda t: float(len(suggest(space, t))), n_trials=30)
    for t in study.trials:
        p = t.params
        mu_on = p["client.batch_size"] in (16, 32) and p["client.lr"] < 0.5
        assert ("client.mu" in p) == mu_on
        assert ("client.momentum" in p) == (p["client.local_steps"] > 1)


def test_distributions(space_of) -> None:
    space = space_of(FEDOPT)
    dists = distributions(space)
    assert dists["server.optimizer"] == CategoricalDistribution(("sgd", "adam", "yogi"))
    assert dists["client.local_epochs"] == IntDistribution(1, 5)
    assert dists["server.momentum"] == FloatDistribution(0.0, 0.9)


def test_grid_search_space_runs_a_grid_study(space_of) -> None:
    space = space_of(
        """
        tuner: {sampler: grid}
        params:
          client.mu: {type: float, low: 0.0, high: 0.2, step: 0.1}
          client.local_epochs: {type: int, low: 2, high: 6, step: 2}
          server.optimizer: [sgd, adam]
        """
    )
    grid = grid_search_space(space)
    assert grid == {
        "client.mu": [0.0, 0.1, 0.2],
        "client.local_epochs": [2, 4, 6],
        "server.optimizer": ["sgd", "adam"],
    }
    assert space.tuner.trials == 18
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(grid, seed=0))
    study.optimize(lambda t: suggest(space, t)["client.mu"], n_trials=space.tuner.trials)
    combos = {tuple(sorted(t.params.items())) for t in study.trials}
    assert len(combos) == 18


def test_grid_search_space_needs_float_steps() -> None:
    space = SearchSpace(
        params=(FloatParam("client.lr", 0.1, 1.0), IntParam("client.local_epochs", 1, 3))
    )
    with pytest.raises(SearchSpaceError) as info:
        grid_search_space(space)
    assert info.value.key == "params.client.lr.step"


SERVER_GRID = """
tuner: {sampler: grid, pruner: none}
params:
  server.optimizer: [sgd, adam]
  server.lr: [0.1, 1.0]
  server.momentum: {type: float, low: 0.0, high: 0.9, step: 0.3, when: {server.optimizer: sgd}}
  server.beta1: {type: float, low: 0.0, high: 0.9, step: 0.45, when: {server.optimizer: adam}}
"""

SERVER_CONFIGS = {
    *(
        (("server.lr", lr), ("server.momentum", m), ("server.optimizer", "sgd"))
        for lr in (0.1, 1.0)
        for m in (0.0, 0.3, 0.6, 0.9)
    ),
    *(
        (("server.beta1", b), ("server.lr", lr), ("server.optimizer", "adam"))
        for lr in (0.1, 1.0)
        for b in (0.0, 0.45, 0.9)
    ),
}


def test_the_grid_counts_distinct_active_configs(space_of) -> None:
    # `space check` said 48 trials (2 * 2 * 4 * 3, the inactive params counted): 8 + 6 configs
    space = space_of(SERVER_GRID)
    assert space.tuner.trials == 14
    grid = grid_search_space(space)
    assert grid == {
        "server.optimizer": ["sgd", "adam"],
        "server.lr": [0.1, 1.0],
        "server.momentum": [0.0, 0.3, 0.6, 0.9],
        "server.beta1": [0.0, 0.45, 0.9],
    }
    assert len(grid.configs) == 14
    assert {tuple(sorted(c.items())) for c in grid.configs} == SERVER_CONFIGS
    assert grid_search_space(space).configs == grid.configs  # one order in every worker


def test_the_grid_sampler_runs_each_distinct_config_once_across_workers(space_of) -> None:
    # `fedhpo tune --trials 5` ran identical trials: the grid held inactive params' values
    space = space_of(SERVER_GRID)
    storage = optuna.storages.InMemoryStorage()
    workers = [
        optuna.create_study(
            storage=storage,
            study_name="g",
            sampler=ConfigGridSampler(grid_search_space(space), seed=seed),
            load_if_exists=True,
        )
        for seed in (11, 12)  # each worker's sampler has a seed of its own
    ]
    values = []
    for i in range(14):
        workers[i % 2].optimize(lambda t: len(values.append(suggest(space, t)) or values), 1)
    configs = [tuple(sorted(v.items())) for v in values]
    assert len(set(configs)) == 14 and set(configs) == SERVER_CONFIGS
    assert [tuple(sorted(t.params.items())) for t in workers[0].trials] == configs


def test_the_grid_tries_configs_in_the_tuner_seeds_order(space_of) -> None:
    first = grid_search_space(space_of(SERVER_GRID)).configs
    other = grid_search_space(space_of(SERVER_GRID.replace("none}", "none, seed: 1}"))).configs
    assert first != other and sorted(map(str, first)) == sorted(map(str, other))


def test_float_steps_are_clean_decimals() -> None:
    assert snap_to_step(0.30000000000000004, 0.1, 0.1) == 0.3
    assert snap_to_step(0.7000000000000001, 0.1, 0.1) == 0.7
    assert snap_to_step(0.1 + 3 * 0.05, 0.1, 0.05) == 0.25
    assert snap_to_step(2.9999999999999996, 1.0, 0.5) == 3.0
    space = SearchSpace(params=(FloatParam("client.momentum", 0.1, 0.9, step=0.1),))
    assert space.param("client.momentum").grid_values() == [
        0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9
    ]  # fmt: skip
    # what a sampler hands over is what Optuna computed (0.1 + 2 * 0.1); the trial trains on 0.3
    assert suggest(space, FixedTrial({"client.momentum": 0.1 + 2 * 0.1})) == {
        "client.momentum": 0.3
    }


@pytest.mark.parametrize(
    "sampler",
    [optuna.samplers.RandomSampler, optuna.samplers.TPESampler],
    ids=["random", "tpe"],
)
def test_samplers_store_clean_step_values(sampler) -> None:
    # the leaderboard and the exported config showed client.momentum 0.30000000000000004
    clean = type("Clean", (CleanSteps, sampler), {})
    space = SearchSpace(params=(FloatParam("client.momentum", 0.1, 0.9, step=0.1),))
    study = optuna.create_study(sampler=clean(seed=0))
    trained = []
    study.optimize(lambda t: trained.append(suggest(space, t)) or 0.0, n_trials=40)
    grid = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}
    stored = [t.params["client.momentum"] for t in study.trials]
    assert set(stored) <= grid and len(set(stored)) >= 5
    assert stored == [v["client.momentum"] for v in trained]
