"""The same study code on PostgreSQL (skips without FEDHPO_TEST_POSTGRES_URL)."""

from __future__ import annotations

import os
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from fedhpo.tune import tune
from tests.helpers import LR_MU

URL = os.environ.get("FEDHPO_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(
    not URL, reason="set FEDHPO_TEST_POSTGRES_URL=postgresql://... to test PostgreSQL storage"
)


def test_two_jobs_on_postgres(make_space) -> None:
    name = f"fedhpo-test-{uuid.uuid4().hex[:8]}"
    space = make_space(
        LR_MU, tuner="{sampler: tpe, pruner: hyperband, trials: 6, seed: 0, promote: 0}"
    )
    try:
        tune(space, storage=URL, study=name, jobs=2, log=lambda _: None)
        study = optuna.load_study(study_name=name, storage=URL)
        assert [t.number for t in study.trials] == list(range(6))
        assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
        tune(space, storage=URL, study=name, trials=2, log=lambda _: None)
        assert len(optuna.load_study(study_name=name, storage=URL).trials) == 8
    finally:
        optuna.delete_study(study_name=name, storage=URL)


def test_one_tune_session_holds_a_study_on_postgres() -> None:
    # the session lock is a PostgreSQL advisory lock here: the second session of a study is
    # refused while the first holds it, another study's is not, and a release frees it
    from fedhpo.store.budget import SessionLock

    name = f"fedhpo-test-{uuid.uuid4().hex[:8]}"
    first, second, other = SessionLock(URL, name), SessionLock(URL, name), SessionLock(URL, "x")
    try:
        assert first.acquire() and not second.acquire() and other.acquire()
        first.release()
        assert second.acquire()
    finally:
        for lock in (first, second, other):
            lock.release()
