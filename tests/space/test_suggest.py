"""The Optuna bridge: suggest() with FixedTrial and real studies, distributions, the grid."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FixedTrial

from fedhpo.errors import SearchSpaceError
from fedhpo.space import (
    CategoricalParam,
    Condition,
    FloatParam,
    IntParam,
    SearchSpace,
    distributions,
    grid_search_space,
    load_space,
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
