"""The fidelity check end to end: a default search measures it first, records it on the study
and runs its trials from the chosen rung; so do workers of a study made with --create-only."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from fedhpo.store import records as rec
from fedhpo.tune import join_study, run_worker, tune
from fedhpo.tune._calibrate import POINTS
from tests.helpers import LR_MU

#: The default schedule: no fidelity section, successive halving, the check left on.
DEFAULT = "{sampler: random, seed: 0, promote: 0}"


def _default_space(make_space):
    return make_space(LR_MU, tuner=DEFAULT, fidelity="{}")


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


def test_a_default_search_runs_and_records_the_fidelity_check(make_space, storage) -> None:
    study = tune(_default_space(make_space), storage=storage, study="s", log=lambda _: None)
    _assert_check_ran_first(study)


def test_workers_of_a_created_only_study_run_the_fidelity_check_first(
    make_space, storage
) -> None:
    space = _default_space(make_space)
    tune(space, storage=storage, study="w", create_only=True, log=lambda _: None)
    report = run_worker(join_study("w", storage))
    assert report.errors == {}
    _assert_check_ran_first(optuna.load_study(study_name="w", storage=storage))
