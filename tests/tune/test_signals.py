"""Stop signals and `fedhpo tune --jobs N`: SIGTERM to the parent, Ctrl-C in a terminal (the
parent and its jobs all get it), and the parent's death stop the jobs the way a worker
stops: the trials they run are failed cleanly and queued again, the parent exits 130 with one
line and no process prints a traceback. And the worker's own rules: a job stops once however
many signals come, and signals never cut a claim in half."""

from __future__ import annotations

import os
import signal

import optuna
import pytest
from optuna.trial import TrialState

from fedhpo.store import Liveness, open_storage
from fedhpo.store import records as rec
from fedhpo.store.budget import Budget, save_budget
from fedhpo.store.lock import StudyLock
from fedhpo.tune._signals import Stopper
from fedhpo.tune._worker import Worker
from tests.tune.procs import alive, finish, gated_space, held, start, trials, wait_until

FAST = ("--heartbeat", "1", "--grace", "3")


@pytest.fixture
def tune_jobs(tmp_path, monkeypatch):
    """``start(group)``: `fedhpo tune --jobs 2` on a gated space, once both jobs are inside a
    trial; the URL, the process and {job pid: trial}. Whatever is left is killed at the end."""
    left: list[int] = []

    def start_tune(group: bool = False):
        url = f"sqlite:///{tmp_path / 'sig.db'}"
        space = gated_space(tmp_path, monkeypatch)
        args = ("tune", "--space", str(space), "--storage", url, "--study", "s", "--trials", "4")
        proc = start(
            tmp_path, *args, "--jobs", "2", "--plugin", "gate_plugin", *FAST, name="tune",
            group=group,
        )  # fmt: skip
        left.append(proc.pid)
        jobs = held(url, "s", 2)
        left.extend(jobs)
        return url, proc, jobs

    yield start_tune
    for pid in left:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def _queued_again(url: str, numbers: list[int], sig: str) -> None:
    """Each of ``numbers`` failed with ``sig`` named and its parameters queued again; nothing
    is left running."""
    ts = trials(url, "s")
    assert [t.number for t in ts if t.state == TrialState.RUNNING] == []
    waiting = [t for t in ts if t.state == TrialState.WAITING]
    for n in numbers:
        assert ts[n].state == TrialState.FAIL
        assert f"interrupted by {sig}" in ts[n].user_attrs[rec.STATUS_REASON]
        assert any(t.params == ts[n].params for t in waiting)
    assert len(waiting) == len(numbers)


def test_sigterm_to_tune_with_jobs_stops_its_jobs_and_queues_their_trials_again(
    tune_jobs, tmp_path
) -> None:
    # the parent had no SIGTERM handler while its jobs ran: it died (143) and its jobs ran on
    # with no parent, finishing the search unseen
    url, proc, jobs = tune_jobs()
    proc.send_signal(signal.SIGTERM)
    assert finish([proc]) == [130]
    err = (tmp_path / "tune.err").read_text()
    assert "Traceback" not in err
    assert err.splitlines()[-1] == "fedhpo: interrupted"
    for number in jobs.values():
        assert f"trial {number} interrupted by SIGTERM" in err
    assert not any(alive(pid) for pid in jobs)
    _queued_again(url, sorted(jobs.values()), "SIGTERM")


def test_ctrl_c_on_tune_with_jobs_is_one_line_and_no_traceback(tune_jobs, tmp_path) -> None:
    # a terminal's Ctrl-C reaches the parent and its jobs; the parent then signalled the jobs
    # again, and each job raised KeyboardInterrupt outside its trial (a traceback per job);
    # a second Ctrl-C could raise inside a claim; the trials said SIGTERM
    url, proc, jobs = tune_jobs(group=True)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, twice in a row
    os.killpg(proc.pid, signal.SIGINT)
    assert finish([proc]) == [130]
    err = (tmp_path / "tune.err").read_text()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    lines = err.splitlines()
    assert lines[-1] == "fedhpo: interrupted"
    assert all("interrupted by SIGINT" in line for line in lines[:-1])
    assert sorted(int(line.split()[2]) for line in lines[:-1]) == sorted(jobs.values())
    assert not any(alive(pid) for pid in jobs)
    _queued_again(url, sorted(jobs.values()), "SIGINT")


def test_jobs_stop_when_their_tune_process_dies(tune_jobs) -> None:
    # a tune process killed outright left its jobs running the search with no parent
    url, proc, jobs = tune_jobs()
    proc.kill()
    assert finish([proc]) == [-signal.SIGKILL]
    wait_until("the orphaned jobs to stop", lambda: not any(alive(pid) for pid in jobs))
    _queued_again(url, sorted(jobs.values()), "SIGTERM")


def _study(tmp_path, liveness: Liveness | None = None) -> tuple[str, optuna.Study]:
    url = f"sqlite:///{tmp_path / 's.db'}"
    storage = open_storage(url, liveness=liveness)
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    save_budget(study, Budget(trials=2))
    return url, study


def test_a_job_process_stops_once_however_many_signals_come(tmp_path, monkeypatch) -> None:
    # a job gets Ctrl-C from the terminal and again from its parent: the second is the same
    # stop, not "again" (which raised KeyboardInterrupt outside the trial: a traceback)
    url, study = _study(tmp_path)
    tell = study.tell

    def tell_then_signal(*args, **kwargs):
        frozen = tell(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)  # the parent's, while the trial is queued again
        return frozen

    monkeypatch.setattr(study, "tell", tell_then_signal)

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0.0, 1.0)
        os.kill(os.getpid(), signal.SIGINT)  # the terminal's, mid-trial
        raise AssertionError("the signal interrupts the trial")

    stopper = Stopper(repeats_raise=False)
    report = Worker(study, StudyLock(url, "s"), objective, stopper=stopper).run()
    assert report.interrupted == "SIGINT" and report.requeued == [0]
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.WAITING]


def test_signals_during_a_claim_do_not_cut_it_in_half(tmp_path, monkeypatch) -> None:
    # two quick Ctrl-Cs: the second raised inside fail_stale_trials, between failing a stale
    # trial and queueing it again (the trial lost, and a 60-line traceback)
    url, study = _study(tmp_path, Liveness(interval=1, grace=2))
    check = optuna.storages.fail_stale_trials

    def check_with_two_signals(s: optuna.Study) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        check(s)

    monkeypatch.setattr(optuna.storages, "fail_stale_trials", check_with_two_signals)
    report = Worker(study, StudyLock(url, "s"), lambda trial: 0.0).run()
    assert report.interrupted == "SIGINT" and report.states == {}
    assert study.get_trials() == []  # stopped before it claimed a trial
