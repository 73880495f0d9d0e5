"""The shared budget: a retried trial's place passes to its retry; deadlines."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from fedhpo.store import open_storage
from fedhpo.store import records as rec
from fedhpo.store.budget import Budget, RetryTrial, retried, used


def test_a_retry_takes_over_the_failed_trials_place(tmp_path) -> None:
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 'b.db'}"))
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    trial.set_user_attr(rec.ORIGIN, "base config")
    trial.set_user_attr(rec.WORKER, {"host": "h", "pid": 1})
    study.tell(trial, state=TrialState.FAIL)
    assert used(study.trials) == 1
    RetryTrial()(study, study.trials[0])
    failed, retry = study.trials
    assert retried(study.trials) == {0} and used(study.trials) == 1
    assert retry.state == TrialState.WAITING and retry.params == failed.params
    assert retry.user_attrs == {rec.ORIGIN: "base config"}  # not the dead worker's attrs
    RetryTrial()(study, retry)  # a retry of the retry: both earlier ones are passed on
    assert retried(study.trials) == {0, 1} and used(study.trials) == 1


def test_deadline_counts_from_the_first_worker() -> None:
    assert Budget(trials=5).deadline is None and not Budget(timeout=10).expired()
    started = Budget(timeout=10, started=100.0)
    assert started.deadline == 110.0
    assert not started.expired(now=109.9) and started.expired(now=110.0)
