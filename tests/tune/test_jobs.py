"""The job processes of `fedhpo tune --jobs N` as their parent sees them: a job killed with
kill -9 has its trial failed and queued again at once by the parent (which knows it died), a
spent budget ends the session normally whatever trials are left, the way to resume names the
real storage, and a timeout counts from when the jobs start, not from before they spawn."""

from __future__ import annotations

import os
import signal
import time

import optuna
import pytest
from optuna.trial import TrialState

from fedhpo.store import open_storage
from fedhpo.store import records as rec
from fedhpo.store.budget import Budget, load_budget, save_budget
from fedhpo.tune._worker import budget_left
from tests.tune.procs import (
    SLOW_START_PLUGIN,
    alive,
    finish,
    gate,
    gated_space,
    held,
    start,
    started_jobs,
    trials,
    wait_until,
)

# a long grace: only the parent can notice a killed job's trial before the budget is spent
SLOW_GRACE = ("--heartbeat", "1", "--grace", "120")


@pytest.fixture
def tune_jobs(tmp_path, monkeypatch):
    """``start(*flags)``: `fedhpo tune --jobs 2` of study k on a gated space, once both jobs
    are inside a trial; the URL, the process and {job pid: trial}. Left processes are killed."""
    left: list[int] = []

    def start_tune(*flags: str):
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
        space = gated_space(tmp_path, monkeypatch)
        args = ("tune", "--space", str(space), "--storage", url, "--study", "k", *flags)
        proc = start(tmp_path, *args, "--jobs", "2", "--plugin", "gate_plugin", name="tune")
        left.append(proc.pid)
        jobs = held(url, "k", 2)
        left.extend(jobs)
        return url, proc, jobs

    yield start_tune
    for pid in left:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_killed_job_s_trial_is_queued_again_at_once_and_a_spent_budget_ends_the_session(
    tune_jobs, tmp_path
) -> None:
    # the dead job's trial stayed RUNNING until its heartbeat went stale; the budget was spent
    # first, and the session said "the search stopped short: trial(s) [5] are not finished"
    # (exit 2, no results) though the budget was used, and so did every rerun
    url, proc, jobs = tune_jobs("--budget", "1", *SLOW_GRACE)
    victim = min(jobs)
    os.kill(victim, signal.SIGKILL)
    gate(tmp_path).unlink()
    assert finish([proc]) == [0]
    err = (tmp_path / "tune.err").read_text()
    out = (tmp_path / "tune.out").read_text()
    assert f"job process {victim} stopped with exit code -9" in err
    assert f"trial {jobs[victim]} was failed and queued again" in err
    assert "compute:" in out and "Top of k" in out
    ts = trials(url, "k")
    killed = ts[jobs[victim]]
    assert killed.state == TrialState.FAIL
    assert "exit code -9" in killed.user_attrs[rec.STATUS_REASON]
    assert [t.number for t in ts if t.state == TrialState.RUNNING] == []
    assert any(t.params == killed.params for t in ts[jobs[victim] + 1 :])  # queued again


def test_a_session_whose_jobs_all_died_says_how_to_resume_with_the_real_storage(
    tune_jobs, tmp_path
) -> None:
    # the hint said `fedhpo worker --study slow --storage URL`, literally
    url, proc, jobs = tune_jobs("--trials", "4", *SLOW_GRACE)
    for pid in jobs:
        os.kill(pid, signal.SIGKILL)
    assert finish([proc]) == [2]
    err = (tmp_path / "tune.err").read_text()
    assert "the search stopped short" in err
    assert f"fedhpo worker --study k --storage {url}" in err
    ts = trials(url, "k")
    assert [t.state for t in ts if t.state != TrialState.FAIL] == [TrialState.WAITING] * 2


def test_the_budget_is_not_left_while_its_steps_are_spent_whatever_still_runs(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=open_storage(url), study_name="s")
    save_budget(study, Budget(steps=100))
    done = study.ask()
    done.set_user_attr(rec.STEPS, 120)
    study.tell(done, 0.5)
    study.ask()  # the trial of a worker that died: it never finishes
    assert budget_left(study) is None


def test_the_timeout_counts_from_when_the_jobs_start(monkeypatch, tmp_path) -> None:
    # on a loaded machine `tune --timeout 8 --jobs 2` ran no trial: the timeout counted from
    # before the job processes spawned, and they took longer than that to start
    url = f"sqlite:///{tmp_path / 't.db'}"
    space = gated_space(tmp_path, monkeypatch)
    (tmp_path / "slow_start.py").write_text(SLOW_START_PLUGIN)
    args = ("tune", "--space", str(space), "--storage", url, "--study", "t", "--trials", "8")
    plugins = ("--plugin", "gate_plugin", "--plugin", "slow_start")
    proc = start(tmp_path, *args, "--timeout", "2", "--jobs", "2", *plugins, name="tune")
    try:
        wait_until("both jobs starting", lambda: len(started_jobs(tmp_path)) == 2)
        seen = time.time()  # the session's budget was recorded before the jobs spawned
        wait_until("the start-up to outlast the timeout", lambda: time.time() > seen + 2)
        gate(tmp_path).unlink()
        assert finish([proc]) == [0]
    finally:
        if proc.poll() is None:
            proc.kill()
    ran = [t for t in trials(url, "t") if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert ran  # trials ran: the timeout began with the first job's first claim
    budget = load_budget(optuna.load_study(study_name="t", storage=url))
    assert budget is not None and budget.started is not None and budget.started >= seen
