"""Learning curves in simulated time: data built from the trials' recorded curves."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from fedhpo.report._sim_time import time_curves_data, time_curves_figure
from fedhpo.store import records as rec


def study_with(curves: list[dict | None], metric: str, direction: str = "minimize"):
    study = optuna.create_study(direction=direction)
    study.set_user_attr(rec.OBJECTIVES, [{"metric": metric, "direction": direction}])
    for i, curve in enumerate(curves):
        attrs = {} if curve is None else {rec.CURVES: curve}
        study.add_trial(
            create_trial(
                state=TrialState.PRUNED if i == 2 else TrialState.COMPLETE,
                value=None if i == 2 else [10.0, 9.0, 0.0, 12.0, 13.0][i],
                params={"client.lr": 0.1},
                distributions={"client.lr": FloatDistribution(0.01, 1.0)},
                user_attrs=attrs,
            )
        )
    return study


def curve(times, acc):
    return {"round": list(range(1, len(times) + 1)), "sim_seconds": times, "val_accuracy": acc}


def test_time_to_accuracy_studies_show_validation_accuracy_over_simulated_time() -> None:
    study = study_with(
        [
            curve([1.5, 3.0, 4.5], [0.2, 0.4, 0.5]),
            curve([0.5, 1.0], [0.3, None]),  # a missing value is skipped
            curve([2.0], [0.1]),  # pruned
            {"round": [1], "val_accuracy": [0.3]},  # recorded before simulated time: left out
            None,
        ],
        "time_to_accuracy",
    )
    data = time_curves_data(study)
    assert data.metric == "val_accuracy"
    assert [(c.trial, c.state, c.seconds, c.values) for c in data.curves] == [
        (0, "complete", [1.5, 3.0, 4.5], [0.2, 0.4, 0.5]),
        (1, "complete", [0.5], [0.3]),
        (2, "pruned", [2.0], [0.1]),
    ]
    assert [c.trial for c in data.curves if c.best] == [1]  # time_to_accuracy 9 < 10
    fig = time_curves_figure(data)
    assert fig.layout.xaxis.title.text == "simulated seconds"
    xs = [x for trace in fig.data for x in trace.x if x is not None]
    assert sorted(xs) == [0.5, 1.5, 2.0, 3.0, 4.5]


def test_a_per_round_objective_is_plotted_itself() -> None:
    study = study_with([curve([1.0, 2.0], [0.2, 0.4]) | {"val_loss": [2.0, 1.5]}], "val_loss")
    data = time_curves_data(study)
    assert data.metric == "val_loss" and data.curves[0].values == [2.0, 1.5]


def test_studies_without_simulated_time_have_no_time_curves() -> None:
    study = study_with([{"round": [1, 2], "val_accuracy": [0.1, 0.2]}], "val_accuracy")
    assert time_curves_data(study).curves == []
