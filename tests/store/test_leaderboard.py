"""The leaderboard's ranking rules beyond "complete trials by value": promoted means, and
trials the budget stopped while ahead. Studies are built trial by trial, so each case is
exactly the one named."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from fedhpo.errors import StudyError
from fedhpo.store import best_trial, leaderboard, other_trials
from fedhpo.store import records as rec

ROUNDS = 30


def _study(metric: str = "val_accuracy", direction: str = "maximize") -> optuna.Study:
    study = optuna.create_study(direction=direction)
    study.set_user_attr(rec.OBJECTIVES, [{"metric": metric, "direction": direction}])
    return study


def _add(
    study: optuna.Study,
    slope: float,
    *,
    rounds: int = ROUNDS,
    metric: str = "val_accuracy",
    budget_stop: dict[str, Any] | None = None,
    attrs: dict[str, Any] | None = None,
    pruned: bool = False,
    param: str = "x",
) -> None:
    """A trial whose ``metric`` is ``slope * round`` for ``rounds`` rounds: complete (value at
    the last round) unless it was pruned or stopped by the budget."""
    curve = [slope * r for r in range(1, rounds + 1)]
    user_attrs = {rec.CURVES: {"round": list(range(1, rounds + 1)), metric: curve}}
    if budget_stop is not None:
        user_attrs[rec.BUDGET_STOP] = budget_stop
    stopped = pruned or budget_stop is not None
    study.add_trial(
        create_trial(
            state=TrialState.PRUNED if stopped else TrialState.COMPLETE,
            value=None if stopped else curve[-1],
            params={param: slope},
            distributions={param: FloatDistribution(0.0, 1.0)},
            user_attrs=user_attrs | (attrs or {}),
        )
    )


def _stop(round_: int, judged: bool = True) -> dict[str, Any]:
    return {"round": round_, "rounds": ROUNDS, "judged": judged}


def test_a_trial_the_budget_stopped_while_ahead_is_ranked_first_and_exported() -> None:
    study = _study()
    _add(study, 0.020)  # complete: 0.60 at round 30, 0.30 at round 15
    _add(study, 0.010)  # complete: 0.30
    _add(study, 0.024, rounds=15, budget_stop=_stop(15))  # 0.36 at round 15, ahead there
    board = leaderboard(study)
    assert list(board["trial"]) == [2, 0, 1]
    first = board.iloc[0]
    assert first["state"] == "pruned" and first["ahead_at_round"] == 15
    assert first["val_accuracy"] == pytest.approx(0.36)  # its value at the round it reached
    assert best_trial(study).number == 2
    assert best_trial(study, 2).number == 2  # `fedhpo best --trial 2` exports it too


def test_a_stopped_trial_behind_or_not_yet_judged_is_not_ranked() -> None:
    study = _study()
    _add(study, 0.020)  # 0.30 at round 15
    _add(study, 0.018, rounds=15, budget_stop=_stop(15))  # 0.27: behind the best there
    _add(study, 0.040, rounds=5, budget_stop=_stop(5, judged=False))  # ahead, but unjudged
    _add(study, 0.050, rounds=15, pruned=True)  # ahead, but pruned by the pruner
    assert list(leaderboard(study)["trial"]) == [0]
    assert best_trial(study).number == 0
    with pytest.raises(StudyError, match="not a complete trial"):
        best_trial(study, 1)


def test_a_stopped_trial_is_compared_with_the_best_complete_trial_not_any() -> None:
    # ahead of the worse complete trial at round 15, behind the best one: not ranked
    study = _study()
    _add(study, 0.010)  # 0.15 at round 15
    _add(study, 0.020)  # 0.30 at round 15, the best complete trial
    _add(study, 0.015, rounds=15, budget_stop=_stop(15))  # 0.225
    assert list(leaderboard(study)["trial"]) == [1, 0]


def test_ahead_means_lower_for_a_minimized_objective() -> None:
    study = _study("val_loss", "minimize")
    _add(study, 0.02, metric="val_loss")  # complete: 0.60, 0.30 at round 15
    _add(study, 0.01, metric="val_loss", rounds=15, budget_stop=_stop(15))  # 0.15: lower
    _add(study, 0.03, metric="val_loss", rounds=15, budget_stop=_stop(15))  # 0.45: higher
    board = leaderboard(study)
    assert list(board["trial"]) == [1, 0]
    assert board.iloc[0]["val_loss"] == pytest.approx(0.15)


def test_the_promoted_base_config_can_be_the_best_trial() -> None:
    # the search stopped the base config (trial 0) at its first rung; promotion re-ran it and
    # it scored best: the leaderboard ranks it first, and `fedhpo best` must export it
    study = _study()
    _add(study, 0.001, rounds=3, pruned=True, attrs={rec.ORIGIN: "base config"})
    _add(study, 0.020)
    study.set_user_attr(
        rec.PROMOTIONS,
        {
            "0": {"seeds": [0, 1], "values": [0.7, 0.7], "mean": 0.7, "std": 0.0},
            "1": {"seeds": [0, 1], "values": [0.6, 0.6], "mean": 0.6, "std": 0.0},
        },
    )
    assert list(leaderboard(study)["trial"]) == [0, 1]
    assert best_trial(study).number == 0


def _multi(points: list[tuple[float, float]]) -> optuna.Study:
    """Complete trials with (val_accuracy, sim_seconds) ``points``, maximized / minimized."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr(
        rec.OBJECTIVES,
        [
            {"metric": "val_accuracy", "direction": "maximize"},
            {"metric": "sim_seconds", "direction": "minimize"},
        ],
    )
    for i, values in enumerate(points):
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                values=list(values),
                params={"x": i / len(points)},
                distributions={"x": FloatDistribution(0.0, 1.0)},
            )
        )
    return study


def test_multi_objective_leaderboard_lists_every_complete_trial_by_pareto_front() -> None:
    # a dominated trial used to be on no list at all, not even with --all
    study = _multi([(0.80, 100.0), (0.70, 50.0), (0.75, 120.0), (0.60, 60.0), (0.90, 300.0),
                    (0.70, 50.0), (0.50, 200.0)])  # fmt: skip
    board = leaderboard(study)
    assert sorted(board["trial"]) == list(range(7))
    fronts = dict(zip(board["trial"], board["front"], strict=True))
    # front 1: 0, 1, 4 and 5 (5 ties with 1: neither dominates); 2 and 3 are dominated only
    # by front 1; 6 by 3 as well
    assert fronts == {0: 1, 1: 1, 4: 1, 5: 1, 2: 2, 3: 2, 6: 3}
    assert {t.number for t in study.best_trials} == {n for n, f in fronts.items() if f == 1}
    assert list(board["front"]) == sorted(board["front"])  # front by front
    # within a front, best first on the first objective; rank is the row's place
    assert list(board["trial"][:4]) == [4, 0, 1, 5] and list(board["rank"]) == list(range(1, 8))
    assert list(leaderboard(study, top=2)["trial"]) == [4, 0]


def test_multi_objective_leaderboard_of_a_study_without_complete_trials_is_empty() -> None:
    study = _multi([])
    study.add_trial(create_trial(state=TrialState.FAIL))
    assert leaderboard(study).empty


def test_a_trial_failed_for_a_stale_heartbeat_says_so(tmp_path) -> None:
    # `leaderboard --all` showed such a trial (its worker killed) with a blank reason
    from fedhpo.store import open_storage
    from fedhpo.store.budget import RetryTrial

    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 's.db'}"))
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial.set_user_attr(rec.WORKER, {"host": "vm", "pid": 42})
    # what another worker's stale-trial check does: fail it, queue its parameters again
    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    RetryTrial()(study, study._storage.get_trial(trial._trial_id))
    others = other_trials(study).set_index("trial")
    reason = others.loc[0, "reason"]
    assert "stopped sending heartbeats" in reason and "queued again as trial 1" in reason
    assert others.loc[1, "state"] == "waiting"


def test_the_export_of_a_trial_the_budget_stopped_says_where_it_stopped(tmp_path) -> None:
    # its header said "at full fidelity ... Reproduce with" for a value at round 15 of 30
    from fedhpo.config import RunConfig
    from fedhpo.store import export_best

    full = RunConfig().with_values({"federation.rounds": ROUNDS})
    study = _study()
    study.set_user_attr(rec.BASE_CONFIG, full.to_dict())
    ran = {rec.CONFIG: full.to_dict()}
    _add(study, 0.020, attrs=ran, param="client.lr")
    _add(study, 0.024, rounds=15, budget_stop=_stop(15), attrs=ran, param="client.lr")
    export_best(study, tmp_path / "best.yaml")
    header = (tmp_path / "best.yaml").read_text()
    assert "stopped by the budget at round 15 of 30" in header
    assert f"measured at the search's fidelity (15 of {ROUNDS} rounds)" in header
    assert "at full fidelity" not in header
