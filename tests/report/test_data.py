"""The report builders: plain data that equals what the study says."""

from __future__ import annotations

import math
import random
import warnings

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from fedhpo.report import (
    clients_data,
    comparison_data,
    contour_data,
    curves_data,
    fidelity_data,
    header_data,
    history_data,
    importance_data,
    leaderboard_data,
    params_data,
    pareto_data,
    running_best,
    spearman,
)
from fedhpo.report._figures import contour_figure, slice_figure
from fedhpo.report._param_data import idw_grid
from fedhpo.store import leaderboard
from fedhpo.store import records as rec


def test_history_best_so_far_is_the_running_best(studies) -> None:
    study = studies.promoted
    data = history_data(study)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert data.trials == [t.number for t in complete]
    assert data.values == [t.value for t in complete]
    assert data.best_so_far == [max(data.values[: i + 1]) for i in range(len(data.values))]
    assert all(a <= b for a, b in zip(data.best_so_far, data.best_so_far[1:], strict=False))
    pruned = [t.number for t in study.trials if t.state == TrialState.PRUNED]
    assert data.pruned_trials == pruned and len(data.pruned_values) == len(pruned)


def test_running_best_minimizes_too() -> None:
    assert running_best([3.0, 1.0, 2.0, 0.5], "minimize") == [3.0, 1.0, 1.0, 0.5]
    assert running_best([1.0, 3.0, 2.0], "maximize") == [1.0, 3.0, 3.0]
    assert running_best([], "maximize") == []


def test_curves_flag_pruned_trials_and_mark_the_leaderboard_best(studies) -> None:
    study = studies.promoted
    data = curves_data(study)
    assert data.metric == "val_accuracy"
    assert {c.trial for c in data.curves} == {t.number for t in study.trials}
    for curve in data.curves:
        trial = study.trials[curve.trial]
        assert curve.pruned == (trial.state == TrialState.PRUNED)
        assert curve.steps == sorted(trial.intermediate_values)
        assert curve.values == [trial.intermediate_values[s] for s in curve.steps]
    best = [c.trial for c in data.curves if c.best]
    assert best == [int(leaderboard(study)["trial"].iloc[0])] == [data.best_trial]
    assert all(len(c.steps) < 8 for c in data.curves if c.pruned)


def test_curves_fall_back_to_recorded_curves_without_intermediate_values(studies) -> None:
    study = studies.multi  # multi-objective studies do not report intermediate values
    data = curves_data(study)
    assert data.curves
    for curve in data.curves:
        curves = study.trials[curve.trial].user_attrs[rec.CURVES]
        assert curve.steps == curves["round"]
        assert curve.values == pytest.approx(curves["val_accuracy"])


def test_header_counts_and_total_wall_time(studies) -> None:
    study = studies.promoted
    data = header_data(study)
    assert data.study == "lr_mu" and data.objectives == [("val_accuracy", "maximize")]
    assert data.counts["complete"] + data.counts["pruned"] == len(study.trials) == 8
    assert data.counts["pruned"] > 0 and data.counts["failed"] == 0
    total = sum(t.user_attrs[rec.WALL_SECONDS] for t in study.trials)
    assert data.total_wall_seconds == pytest.approx(total)
    assert "client:" in data.base_config and "client.mu" in data.space_text
    assert data.version == "0.1.0" and data.space_file.endswith("lr_mu.yaml")
    assert data.tuner["pruner"] == "median" and data.fidelity["rounds"] == 8


def test_leaderboard_data_puts_the_promoted_winner_first(studies) -> None:
    study = studies.promoted
    data = leaderboard_data(study)
    board = leaderboard(study, top=20)
    assert data.board.columns == list(board.columns)
    assert [row[data.board.columns.index("trial")] for row in data.board.rows] == list(
        board["trial"]
    )
    assert data.best_trial in rec.promotions(study)
    assert data.best_params == study.trials[data.best_trial].params
    others = [r[0] for r in data.others.rows]
    assert others == [t.number for t in study.trials if t.state == TrialState.PRUNED]
    assert all(isinstance(v, (int, float, str, type(None))) for r in data.board.rows for v in r)


def test_importances_sum_to_one_over_the_searched_params(studies) -> None:
    data = importance_data(studies.promoted)
    assert data.note is None
    assert set(data.importances) == {"client.lr", "client.mu"}
    assert sum(data.importances.values()) == pytest.approx(1.0)
    values = list(data.importances.values())
    assert values == sorted(values, reverse=True)


def test_importances_of_a_multi_objective_study_use_the_first_objective(studies) -> None:
    data = importance_data(studies.multi)
    assert data.metric == "val_accuracy"
    assert sum(data.importances.values()) == pytest.approx(1.0)


def _study(values: list[float], xs: list[float]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for v, x in zip(values, xs, strict=True):
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": x}, distributions={"x": FloatDistribution(0, 1)}, value=v
            )
        )
    return study


def test_importances_are_guarded() -> None:
    one = importance_data(_study([0.5], [0.1]))
    assert one.importances == {} and "at least 2 complete trials" in one.note
    flat = importance_data(_study([0.5, 0.7, 0.6], [0.3, 0.3, 0.3]))
    assert flat.importances == {} and "more than one value" in flat.note
    none = _study([], [])
    assert importance_data(none).note.startswith("needs") and contour_data(none).note


def test_spearman_on_known_inputs() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties share the average rank: y ranks are [1, 2, 3.5, 5, 3.5]
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / math.sqrt(95))
    assert spearman([1.0], [2.0]) is None
    assert spearman([1, 2, 3], [7, 7, 7]) is None
    with pytest.raises(ValueError):
        spearman([1, 2], [1])


def test_spearman_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(0)
    for _ in range(20):
        n = rng.randint(2, 12)
        x = [rng.choice([0.1, 0.2, 0.3, rng.random()]) for _ in range(n)]
        y = [rng.choice([1.0, 2.0, rng.random()]) for _ in range(n)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant input: scipy warns and gives nan
            expected = stats.spearmanr(x, y).statistic
        got = spearman(x, y)
        assert (got is None and math.isnan(expected)) or got == pytest.approx(expected)


def test_fidelity_pairs_low_and_full_fidelity_scores(studies) -> None:
    study = studies.promoted
    data = fidelity_data(study)
    promoted = rec.promotions(study)
    assert data.trials == sorted(promoted) and len(data.trials) == 3
    assert data.low_fidelity == [study.trials[n].value for n in data.trials]
    assert data.mean == [promoted[n]["mean"] for n in data.trials]
    assert data.std == [promoted[n]["std"] for n in data.trials]
    assert data.spearman == spearman(data.low_fidelity, data.mean)


def test_clients_prefer_the_promoted_winner(studies) -> None:
    study = studies.promoted
    data = clients_data(study)
    assert data.promoted and data.trial == leaderboard_data(study).best_trial
    assert data.accuracies == study.trials[data.trial].user_attrs[rec.CLIENT_ACCURACIES]
    assert clients_data(studies.empty).accuracies == []


def test_pareto_front_is_the_studys_best_trials(studies) -> None:
    study = studies.multi
    data = pareto_data(study)
    assert data.metrics == ("val_accuracy", "bytes_sent")
    assert data.directions == ("maximize", "minimize")
    assert set(data.front_trials) == {t.number for t in study.best_trials}
    assert data.front_x == sorted(data.front_x)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert data.trials == [t.number for t in complete]
    assert pareto_data(studies.promoted) is None


def test_params_and_contour_use_log_axes_for_log_params(studies) -> None:
    params = params_data(studies.promoted)
    specs = {s.name: s for s in params.specs}
    assert specs["client.lr"].log and not specs["client.mu"].log
    data = contour_data(studies.promoted)
    assert {data.x.name, data.y.name} == {"client.lr", "client.mu"}
    lr_grid = data.grid_x if data.x.name == "client.lr" else data.grid_y
    assert lr_grid[0] == pytest.approx(1e-4) and lr_grid[-1] == pytest.approx(1.0)
    ratios = [b / a for a, b in zip(lr_grid, lr_grid[1:], strict=False)]
    assert max(ratios) == pytest.approx(min(ratios))  # evenly spaced in log10
    assert len(data.z) == len(data.grid_y) and len(data.z[0]) == len(data.grid_x)
    fig = contour_figure(data)
    axis = fig.layout.xaxis if data.x.name == "client.lr" else fig.layout.yaxis
    assert axis.type == "log"
    slices = slice_figure(params)
    assert [a.type for a in (slices.layout.xaxis, slices.layout.xaxis2)] == ["log", None]


def test_idw_is_exact_at_the_samples_and_bounded() -> None:
    z = idw_grid([0.0, 1.0], [0.0, 1.0], [2.0, 4.0], [0.0, 0.5, 1.0], [0.0, 0.5, 1.0])
    assert z[0][0] == 2.0 and z[2][2] == 4.0
    assert z[1][1] == pytest.approx(3.0)
    assert all(2.0 <= v <= 4.0 for row in z for v in row)


def test_comparison_series_are_monotone(studies) -> None:
    data = comparison_data([studies.promoted, studies.failing])
    a, b = data.series
    assert a.study == "lr_mu" and a.trial_count == list(range(1, 9))
    values = [v for v in a.best_so_far if v is not None]
    assert values == sorted(values)
    assert a.best_so_far[-1] == max(t.value for t in studies.promoted.best_trials)
    assert a.cumulative_seconds == sorted(a.cumulative_seconds)
    assert b.best_so_far == [None, None, None] and b.cumulative_seconds == [0.5, 1.0, 1.5]
