"""DistinctSampler: the default sampler does not spend trials on configs it has already tried."""

from __future__ import annotations

import math
import warnings
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from fedhpo.tune import make_sampler
from fedhpo.tune._distinct import MIN_DISTANCE, DistinctSampler, distance

LR = FloatDistribution(1e-3, 1.0, log=True)
MU = FloatDistribution(0.0, 1.0)
EPOCHS = IntDistribution(1, 4)
OPT = CategoricalDistribution(["sgd", "adam"])
DISTS = {"lr": LR, "mu": MU, "epochs": EPOCHS, "opt": OPT}


def test_distance_is_the_largest_step_on_each_parameters_unit_scale() -> None:
    a = {"lr": 0.01, "mu": 0.5, "epochs": 2, "opt": "sgd"}
    # lr on the log scale: a factor of 10 is a third of [1e-3, 1]
    assert distance({**a, "lr": 0.1}, a, DISTS) == pytest.approx(1 / 3)
    assert distance({**a, "mu": 0.55}, a, DISTS) == pytest.approx(0.05)
    assert distance({**a, "epochs": 3}, a, DISTS) == pytest.approx(1 / 3)
    assert distance(a, a, DISTS) == 0.0
    assert distance({**a, "opt": "adam"}, a, DISTS) == math.inf


def test_only_the_tried_configs_active_parameters_count() -> None:
    # an sgd trial had no beta1; a proposal that carries an (inactive) beta1 is still a repeat
    tried = {"opt": "sgd", "lr": 0.01}
    dists = {"opt": OPT, "lr": LR}
    assert distance({"opt": "sgd", "lr": 0.0105, "beta1": 0.3}, tried, dists) < MIN_DISTANCE
    assert distance({"opt": "sgd"}, tried, dists) == math.inf  # cannot tell: not a repeat


def _study(sampler: optuna.samplers.BaseSampler, trials: int) -> optuna.Study:
    """Four queued configs (a fidelity check), then proposals on a peaked objective."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for x, k in [(0.3, "a"), (0.7, "b"), (0.1, "a"), (0.9, "b")]:
        study.enqueue_trial({"x": x, "k": k})

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        k = trial.suggest_categorical("k", ["a", "b"])
        return -((x - 0.3) ** 2) - (k == "b")

    study.optimize(objective, n_trials=trials)
    return study


def _repeats(study: optuna.Study) -> list[tuple[int, int]]:
    ts = study.trials
    return [
        (j, i)
        for i in range(4, len(ts))
        for j in range(i)
        if distance(ts[i].params, ts[j].params, ts[j].distributions) <= MIN_DISTANCE
    ]


def _tpe(seed: int) -> optuna.samplers.TPESampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True, constant_liar=True, n_startup_trials=4
        )


def test_tpe_alone_repeats_the_best_config_and_the_wrapper_does_not() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plain = sum(len(_repeats(_study(_tpe(seed), 8))) for seed in range(5))
    assert plain > 0  # the defect: proposals next to the best of the check's four
    for seed in range(5):
        assert _repeats(_study(DistinctSampler(_tpe(seed), seed=seed), 8)) == []


class _Repeating(optuna.samplers.BaseSampler):
    """A sampler whose joint proposal is always the same config (the worst case)."""

    def __init__(self, point: dict[str, Any]) -> None:
        self.point = point
        self.calls = 0

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        return {"x": FloatDistribution(0.0, 1.0)}

    def sample_relative(self, study: Any, trial: Any, search_space: Any) -> dict[str, Any]:
        self.calls += 1
        return dict(self.point)

    def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
        return 0.5


def test_when_every_draw_repeats_the_trial_is_drawn_at_random() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    inner = _Repeating({"x": 0.25})
    sampler = DistinctSampler(inner, seed=3, tries=5)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=3)
    xs = [t.params["x"] for t in study.trials]
    assert xs[0] == 0.25  # nothing tried yet: the proposal stands
    assert inner.calls == 1 + 5 + 5  # then every draw was a repeat, five times per trial
    assert all(abs(x - 0.25) > 0 and x != 0.5 for x in xs[1:])  # at random, not the inner's


def test_the_default_sampler_does_not_repeat_but_random_search_stays_plain() -> None:
    assert isinstance(make_sampler("tpe", 0), DistinctSampler)
    assert isinstance(make_sampler("random", 0), optuna.samplers.RandomSampler)


def test_a_random_fallback_is_not_a_copy_of_the_samplers_own_first_random_config() -> None:
    """Seen in a w_server search: trial 11 ran trial 1's exact config (adam, lr 2.668, beta1
    0.6732). TPE's start-up trials and the wrapper's fallback were both a RandomSampler on
    the same seed, so the first fallback replayed the first start-up draw. Here every
    proposal counts as a repeat (min_distance above any distance), so every trial after the
    start-up falls back."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for seed in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            inner = optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=2)
        study = optuna.create_study(sampler=DistinctSampler(inner, seed=seed, min_distance=2.0))
        study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0) + t.suggest_float("y", 0, 1), 6)
        configs = [tuple(t.params.values()) for t in study.trials]
        assert len(set(configs)) == len(configs), (seed, configs)


def test_a_fallback_depends_on_its_trial_number_not_on_the_fallbacks_before_it() -> None:
    """A fallback draws from the trial's own stream (seed, trial number): two workers on one
    seed fall back to different configs for different trials, and a trial draws the same
    whichever fallbacks its process made before."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    draws = []
    for queued in (False, True):
        study = optuna.create_study(sampler=DistinctSampler(_Repeating({"x": 0.25}), seed=3))
        study.enqueue_trial({"x": 0.25})
        if queued:  # trial 1 is queued: no fallback before trial 2 in this process
            study.enqueue_trial({"x": 0.75})
        study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=3)
        draws.append([t.params["x"] for t in study.trials])
    assert draws[1][1] == 0.75 and draws[0][1] != draws[0][2]
    assert draws[0][2] == draws[1][2]
