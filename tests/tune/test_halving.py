"""CurveHalving: a trial goes on at a rung only if it is in the best third of all curves."""

from __future__ import annotations

import optuna

from fedhpo.tune._halving import CurveHalving, rungs


def _study_with(curves: list[dict[int, float]], direction: str = "maximize") -> optuna.Study:
    study = optuna.create_study(direction=direction)
    for values in curves:
        study.add_trial(
            optuna.trial.create_trial(
                value=values[max(values)],
                intermediate_values=values,
                params={},
                distributions={},
            )
        )
    return study


def _judge(study: optuna.Study, pruner: CurveHalving, values: dict[int, float]) -> bool:
    trial = study.ask()
    for step, v in values.items():
        trial.report(v, step)
    return pruner.prune(study, study._storage.get_trial(trial._trial_id))


def test_rungs_grow_by_about_the_reduction_factor_and_stop_short_of_the_end() -> None:
    assert rungs(22, 200, 3) == [22, 66]
    assert rungs(67, 200, 3) == [67]
    assert rungs(3, 30, 3) == [3, 9]
    assert rungs(1, 30, 3) == [1, 3, 10]
    assert rungs(20, 200, 3, every=10) == [20, 60]
    assert rungs(30, 30, 3) == []


def test_no_rung_stops_a_trial_that_has_spent_most_of_a_full_run() -> None:
    # a last rung at 27 of 30 or 198 of 200 rounds saves a tenth of a run when it prunes
    for first, rounds, every in [(1, 30, 1), (3, 30, 1), (22, 200, 1), (2, 200, 10), (5, 81, 1)]:
        out = rungs(first, rounds, 3, every)
        assert out[0] >= first and all(r % every == 0 for r in out)
        assert out[-1] <= rounds / 2, (first, rounds, out)


def test_a_trial_below_the_best_third_is_stopped_and_the_others_go_on() -> None:
    # full runs recorded by the fidelity check, reporting at every round
    study = _study_with([{r: 0.1 * k for r in range(1, 31)} for k in range(1, 6)])
    pruner = CurveHalving(3, 30)
    assert _judge(study, pruner, {3: 0.35})  # third of 6: not in the best 2, stopped
    assert not _judge(study, pruner, {3: 0.55})  # the best: goes on
    assert not _judge(study, pruner, {2: 0.0})  # not on a rung: never judged


def test_minimizing_and_too_few_to_compare() -> None:
    study = _study_with([{9: 1.0}, {9: 2.0}, {9: 3.0}], direction="minimize")
    pruner = CurveHalving(9, 30)
    assert not _judge(study, pruner, {9: 0.5})
    assert _judge(study, pruner, {9: 2.5})
    lonely = _study_with([{9: 1.0}])
    assert not _judge(lonely, pruner, {9: 9.0})  # one other curve: no verdict yet
