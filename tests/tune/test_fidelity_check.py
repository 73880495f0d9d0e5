"""The fidelity check end to end: a search asked for it (``tuner.calibrate: true``) measures
it first, records it on the study and runs its trials from the chosen rung; so do workers of a
study made with --create-only. The default search runs no check."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from fedhpo.store import records as rec
from fedhpo.tune import join_study, run_worker, tune
from fedhpo.tune._calibrate import POINTS
from tests.helpers import LR_MU

#: The default schedule (no fidelity section, successive halving) with the check asked for.
CHECKED = "{sampler: random, seed: 0, promote: 0, calibrate: true}"


def _checked_space(make_space):
    return make_space(LR_MU, tuner=CHECKED, fidelity="{}")


def _assert_check_ran_first(study: optuna.Study) -> None:
    check = rec.fidelity_check(study)
    assert check is not None, "the fidelity check was not recorded on the study"
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    calibration = [t for t in trials if t.user_attrs.get(rec.CALIBRATION)]
    assert [t.number for t in calibration] == list(range(POINTS)) == sorted(check["trials"])
    # the check's runs went to full fidelity (12 rounds in tests.helpers.BASE), unpruned
    assert all(t.state == TrialState.COMPLETE for t in calibration)
    assert all(len(t.user_attrs[rec.CURVES]["round"]) == 12 for t in calibration)
    searched = [t for t in trials[POINTS:] if t.state.is_finished()]
    assert searched, "no trial ran after the check"
    assert {t.user_attrs[rec.FIDELITY]["min_rounds"] for t in searched} == {check["chosen"]}


def test_a_search_asked_to_check_runs_and_records_the_fidelity_check(make_space, storage) -> None:
    study = tune(_checked_space(make_space), storage=storage, study="s", log=lambda _: None)
    _assert_check_ran_first(study)


def test_the_default_search_runs_no_check_and_prunes_from_a_ninth(make_space, storage) -> None:
    space = make_space(LR_MU, tuner="{sampler: random, seed: 0, promote: 0}", fidelity="{}")
    study = tune(space, storage=storage, study="d", log=lambda _: None)
    assert rec.fidelity_check(study) is None
    assert not any(t.user_attrs.get(rec.CALIBRATION) for t in study.trials)
    # the first rung is a ninth of the 12 rounds of tests.helpers.BASE, and trials may run to 12
    fidelities = [t.user_attrs[rec.FIDELITY] for t in study.trials if t.state.is_finished()]
    assert fidelities and {(f["min_rounds"], f["rounds"]) for f in fidelities} == {(1, 12)}


def test_workers_of_a_created_only_study_run_the_fidelity_check_first(make_space, storage) -> None:
    space = _checked_space(make_space)
    tune(space, storage=storage, study="w", create_only=True, log=lambda _: None)
    report = run_worker(join_study("w", storage))
    assert report.errors == {}
    _assert_check_ran_first(optuna.load_study(study_name="w", storage=storage))


def _count_passes(monkeypatch, fail_first: bool = False) -> list[int]:
    """Record the size of each batched pass the objective makes (the first one interrupted
    like a Ctrl-C when ``fail_first``)."""
    import fedhpo.tune._objective as objective

    sizes: list[int] = []
    real = objective.run_batch

    def counting(configs, dataset=None):
        sizes.append(len(configs))
        if fail_first and len(sizes) == 1:
            raise KeyboardInterrupt
        return real(configs, dataset)

    monkeypatch.setattr(objective, "run_batch", counting)
    return sizes


def test_the_check_runs_in_one_batched_pass_per_job(make_space, storage, monkeypatch) -> None:
    sizes = _count_passes(monkeypatch)
    study = tune(_checked_space(make_space), storage=storage, study="b", log=lambda _: None)
    assert sizes == [POINTS]  # one job: all of the check's runs share one pass
    _assert_check_ran_first(study)
    # each trial keeps its own run: its value is its own curve's last point
    for t in study.trials[:POINTS]:
        assert t.value == t.user_attrs[rec.CURVES]["val_accuracy"][-1]
        assert t.user_attrs[rec.CONFIG]["client"]["lr"] == t.params["client.lr"]


def test_an_interrupted_check_pass_queues_its_runs_again_as_check_runs(
    make_space, storage, monkeypatch
) -> None:
    _count_passes(monkeypatch, fail_first=True)
    study = tune(_checked_space(make_space), storage=storage, study="i", log=lambda _: None)
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.state for t in trials[:POINTS]] == [TrialState.FAIL] * POINTS
    check = rec.fidelity_check(study)
    assert check is not None
    # the retries ran as the check's runs (full fidelity, flagged), and only they were measured
    assert sorted(check["trials"]) == list(range(POINTS, 2 * POINTS))
    for t in trials[POINTS : 2 * POINTS]:
        assert t.user_attrs.get(rec.CALIBRATION) and t.state == TrialState.COMPLETE
        assert len(t.user_attrs[rec.CURVES]["round"]) == 12


def test_the_check_says_what_it_costs_and_when_that_is_past_the_budget(make_space, storage) -> None:
    """Costly configs make the check's four full runs cost more than four base runs: the
    search says so before running them, and warns when they alone spend past the budget."""
    from fedhpo.space import load_space
    from fedhpo.tune import cached_dataset, run_steps

    epochs = "  client.local_epochs: {type: int, low: 3, high: 4}\n"
    space = make_space(LR_MU + epochs, tuner=CHECKED, fidelity="{}")
    lines: list[str] = []
    study = tune(space, storage=storage, study="c", budget=2, log=lines.append)
    base = load_space(space).base
    full = run_steps(base, cached_dataset(base.data))
    checked = [t for t in study.trials if t.user_attrs.get(rec.CALIBRATION)]
    spent = sum(rec.trial_steps(t) for t in checked) / full
    assert len(checked) == POINTS and spent > 2  # base config 1 + three configs of 3-4 epochs
    said = next(line for line in lines if line.startswith("fidelity check: 4 configs"))
    assert f"up to {spent:.3g} full-run equivalents" in said  # none diverged: all of it
    assert "more than the budget of 2" in said and "tuner.calibrate" in said


def test_a_check_within_the_budget_says_its_share_of_it(make_space, storage) -> None:
    lines: list[str] = []
    tune(_checked_space(make_space), storage=storage, study="s", budget=10, log=lines.append)
    said = next(line for line in lines if line.startswith("fidelity check: 4 configs"))
    # lr and mu do not change a run's cost: four full runs of the base config
    assert said.endswith("(up to 4 of the budget's 10 full-run equivalents)")


def test_progress_counts_the_checks_trials_with_the_searchs(make_space, storage) -> None:
    calls: list[tuple[int, int, float | None, float | None]] = []
    study = tune(
        _checked_space(make_space), storage=storage, study="p", trials=POINTS + 2,
        log=lambda _: None, progress=lambda *a: calls.append(a),
    )  # fmt: skip
    assert len(study.trials) == POINTS + 2
    assert calls[-1][:2] == (POINTS + 2, POINTS + 2)
    assert all(0 <= done <= total == POINTS + 2 for done, total, *_ in calls[POINTS:])


def test_the_checks_batched_runs_each_train_on_their_own_data(make_space, storage) -> None:
    # the check's full runs share one batched call; it ran every config on the first one's
    # dataset, so a space over data.options recorded values no run of those configs made
    space = make_space(
        "  data.options.num_clients: {type: int, low: 8, high: 20}\n", tuner=CHECKED, fidelity="{}"
    )
    study = tune(space, storage=storage, study="data", trials=POINTS, log=lambda _: None)
    calibration = [t for t in study.get_trials() if t.user_attrs.get(rec.CALIBRATION)]
    sizes = {t.params["data.options.num_clients"] for t in calibration}
    assert len(sizes) > 1
    for t in calibration:
        clients = t.params["data.options.num_clients"]
        assert t.user_attrs[rec.CONFIG]["data"]["options"]["num_clients"] == clients
        assert len(t.user_attrs[rec.CLIENT_ACCURACIES]) == clients
