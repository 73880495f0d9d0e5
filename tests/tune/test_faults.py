"""Real processes, real faults: workers killed with SIGKILL mid-trial (PostgreSQL workers and
SQLite --jobs), stopped with SIGINT/SIGTERM, and a database server restarted mid-study."""

from __future__ import annotations

import os
import signal
import socket
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from fedhpo.cli.main import main
from fedhpo.store import records as rec
from fedhpo.tune import tune
from tests.tune.procs import (
    check_consistent,
    finish,
    gate,
    gated_space,
    held,
    reported,
    start,
    trials,
)

PG_URL = os.environ.get("FEDHPO_TEST_POSTGRES_URL")
needs_pg = pytest.mark.skipif(
    not PG_URL, reason="set FEDHPO_TEST_POSTGRES_URL=postgresql://... to test PostgreSQL workers"
)
FAST = ("--heartbeat", "1", "--grace", "3")


@pytest.mark.slow
@needs_pg
def test_three_postgres_workers_one_killed(monkeypatch, tmp_path) -> None:
    assert PG_URL
    name = f"fedhpo-kill-{uuid.uuid4().hex[:8]}"
    space = gated_space(tmp_path, monkeypatch)
    tune(space, storage=PG_URL, study=name, trials=6, create_only=True)
    try:
        args = ("worker", "--study", name, "--storage", PG_URL, "--plugin", "gate_plugin")
        procs = [start(tmp_path, *args, *FAST, name=f"w{i}") for i in range(3)]
        inside = held(PG_URL, name, 3)
        victim = procs[0].pid
        os.kill(victim, signal.SIGKILL)
        gate(tmp_path).unlink()
        assert finish(procs) == [-signal.SIGKILL, 0, 0]
        figures = check_consistent(PG_URL, name, budget=6)
        killed = trials(PG_URL, name)[inside[victim]]
        assert killed.state == TrialState.FAIL
        assert figures["failed"] == 1 and figures["retried"] == 1
        # what the surviving workers say they finished is in the database, once each
        done = [t.number for t in trials(PG_URL, name) if t.state != TrialState.FAIL]
        assert sorted(reported(tmp_path, ["w1", "w2"])) == done
        print(f"\nFIGURES postgres kill: {figures}")
    finally:
        optuna.delete_study(study_name=name, storage=PG_URL)


@pytest.mark.slow
def test_sqlite_jobs_survive_a_killed_job(monkeypatch, tmp_path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    space = gated_space(tmp_path, monkeypatch)
    args = ("tune", "--space", str(space), "--storage", url, "--study", "k", "--trials", "6")
    proc = start(tmp_path, *args, "--jobs", "2", "--plugin", "gate_plugin", *FAST, name="tune")
    inside = held(url, "k", 2)  # both jobs started a trial together
    # item 6: while they run, `studies` and `leaderboard` name each trial's worker
    assert main(["studies", "--storage", url, "--format", "json"]) == 0
    assert main(["leaderboard", "k", "--storage", url]) == 0
    out = capsys.readouterr().out
    for pid in inside:
        assert f"{socket.gethostname()}:{pid}" in out
    assert '"running":2' in out.replace(" ", "")
    victim = min(inside)
    os.kill(victim, signal.SIGKILL)
    gate(tmp_path).unlink()
    assert finish([proc]) == [0]
    assert "exit code -9" in (tmp_path / "tune.err").read_text()
    figures = check_consistent(url, "k", budget=6)
    ts = trials(url, "k")
    assert ts[inside[victim]].state == TrialState.FAIL and figures["retried"] == 1
    base = [t for t in ts if t.user_attrs.get(rec.ORIGIN) and t.state != TrialState.FAIL]
    assert len(base) == 1  # the enqueued base config ran once
    print(f"\nFIGURES sqlite --jobs 2 kill: {figures}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_fails_the_trial_cleanly_and_exits_0(monkeypatch, tmp_path, sig) -> None:
    url = f"sqlite:///{tmp_path / 'sig.db'}"
    space = gated_space(tmp_path, monkeypatch)
    tune(space, storage=url, study="s", trials=2, create_only=True)
    args = ("worker", "--study", "s", "--storage", url, "--plugin", "gate_plugin", *FAST)
    proc = start(tmp_path, *args, name="w")
    (number,) = held(url, "s", 1).values()
    proc.send_signal(sig)
    assert finish([proc]) == [0]
    assert f"stopped by {sig.name}" in (tmp_path / "w.out").read_text()
    ts = trials(url, "s")
    assert ts[number].state == TrialState.FAIL
    assert f"interrupted by {sig.name}" in ts[number].user_attrs[rec.STATUS_REASON]
    assert [t.state for t in ts if t.state != TrialState.FAIL] == [TrialState.WAITING]
    if sig == signal.SIGTERM:  # another worker runs the queued retry and the rest
        gate(tmp_path).unlink()
        assert finish([start(tmp_path, *args, name="w2")]) == [0]
        assert check_consistent(url, "s", budget=2)["retried"] == 1
