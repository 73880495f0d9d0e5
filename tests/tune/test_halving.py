"""CurveHalving: a trial goes on at a rung only if it is in the best third of all curves."""

from __future__ import annotations

import optuna

from fedhpo.tune._fidelity import Schedule, make_pruner
from fedhpo.tune._halving import SAMPLE, CurveHalving, rungs


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
    pruner = CurveHalving(3, 30)  # five others: the first rung's sample is there
    assert _judge(study, pruner, {3: 0.35})  # third of 6: not in the best 2, stopped
    assert pruner.reasons[5] == (
        "pruned at round 3: 2 of 5 other trials were better there (the best 2 go on)"
    )
    assert not _judge(study, pruner, {3: 0.55})  # the best: goes on
    assert not _judge(study, pruner, {2: 0.0})  # not on a rung: never judged


def test_minimizing_and_too_few_to_compare() -> None:
    study = _study_with([{3: 1.0, 9: 1.0}, {3: 2.0, 9: 2.0}, {3: 3.0, 9: 3.0}], "minimize")
    pruner = CurveHalving(3, 30, sample=3)
    assert not _judge(study, pruner, {9: 0.5})
    assert _judge(study, pruner, {9: 2.5})
    lonely = _study_with([{3: 1.0, 9: 1.0}])
    assert not _judge(lonely, pruner, {9: 9.0})  # later rung, one other curve: no verdict yet


def test_the_first_trials_stop_at_the_first_rung_until_there_is_a_sample() -> None:
    # ASHA lets a trial with nothing to compare with go on: the first trials of every study
    # (the base config first) would run to the end unjudged
    pruner = CurveHalving(3, 30, sample=4)
    curves: list[dict[int, float]] = []
    for value in (0.9, 0.8, 0.7, 0.6):  # each the best so far, and still stopped
        assert _judge(_study_with(curves), pruner, {3: value})
        curves.append({3: value})
    # four others: now a trial is judged
    assert not _judge(_study_with(curves), pruner, {3: 0.95})
    assert not _judge(_study_with(curves), pruner, {3: 0.85})  # second of five: best two
    assert _judge(_study_with(curves), pruner, {3: 0.75})
    # the sample is the first rung's only: at a later rung, a trial with one other goes on
    later = _study_with([{3: 0.5, 9: 0.5}])
    assert not _judge(later, pruner, {3: 0.1, 9: 0.1})


def test_a_search_of_few_trials_keeps_most_of_them_out_of_the_sample() -> None:
    sched = Schedule(30, 30, 3, 1, "successive_halving")
    assert _sample(make_pruner(sched)) == SAMPLE
    assert _sample(make_pruner(sched, trials=100)) == SAMPLE
    assert _sample(make_pruner(sched, trials=8)) == 2
    assert _sample(make_pruner(sched, trials=3)) == 0


def _sample(pruner: object) -> int:
    assert isinstance(pruner, CurveHalving)
    return pruner.sample
