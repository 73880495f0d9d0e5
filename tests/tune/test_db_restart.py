"""The database server restarts mid-study: workers wait it out and lose nothing. The server is
the test's own (initdb + pg_ctl, its own data dir, a free port); the shared one is untouched."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from optuna.trial import TrialState

from fedhpo.tune import tune
from tests.tune.procs import check_consistent, finish, gate, gated_space, start, trials, wait_until

BINDIRS = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    """A throw-away PostgreSQL server run as the ``postgres`` OS user (tests run as root)."""

    def __init__(self, tmp_path: Path) -> None:
        self.bindir = Path(BINDIRS[-1])
        # The data dir must be reachable by the postgres user; pytest keeps its own temp root
        # at mode 0700 (and resets it whenever a pytest run starts), so the server's folder
        # lives beside it in /tmp, linked from tmp_path, and is removed afterwards.
        self.root = Path(tempfile.mkdtemp(prefix="fedhpo-test-pg-"))
        (tmp_path / "pg").symlink_to(self.root)
        self.data = self.root / "data"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        shutil.chown(self.root, "postgres", "postgres")

    def _as_postgres(self, tool: str, *args: str) -> None:
        cmd = ["runuser", "-u", "postgres", "--", str(self.bindir / tool), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{tool} failed: {done.stdout}{done.stderr}"

    def init(self) -> None:
        self._as_postgres("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-N")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.data / "server.log")
        self._as_postgres("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[PrivatePostgres]:
    if not BINDIRS or shutil.which("runuser") is None:
        pytest.skip("PostgreSQL's initdb/pg_ctl (/usr/lib/postgresql/*/bin) or runuser missing")
    if os.geteuid() != 0:
        pytest.skip("starting a private PostgreSQL server needs root (to run as user postgres)")
    server = PrivatePostgres(tmp_path)
    server.init()
    server.start()
    try:
        yield server
    finally:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(server.bindir / "pg_ctl")]
            + ["-D", str(server.data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.mark.slow
def test_workers_ride_out_a_database_restart(monkeypatch, tmp_path, private_postgres) -> None:
    url = private_postgres.url
    space = gated_space(tmp_path, monkeypatch)
    tune(space, storage=url, study="r", trials=8, create_only=True)
    # grace (60 s) longer than the outage: no live trial is taken for dead
    args = ("worker", "--study", "r", "--storage", url, "--plugin", "gate_plugin")
    procs = [
        start(tmp_path, *args, "--heartbeat", "1", "--grace", "60", name=f"w{i}") for i in range(2)
    ]

    def held() -> bool:
        return sum(t.state == TrialState.RUNNING for t in trials(url, "r")) == 2

    wait_until("both workers inside a trial", held)
    private_postgres.stop()
    gate(tmp_path).unlink()  # the held trials now finish and must write to a dead server
    wait_until(
        "a worker to hit the outage",
        lambda: any("database unavailable" in (tmp_path / f"w{i}.err").read_text() for i in (0, 1)),
    )
    private_postgres.start()
    assert finish(procs) == [0, 0]
    errs = "".join((tmp_path / f"w{i}.err").read_text() for i in (0, 1))
    assert "database back" in errs
    figures = check_consistent(url, "r", budget=8)
    assert figures["failed"] == 0  # every trial survived, none had to be retried
    print(f"\nFIGURES restart: {figures}")


@pytest.mark.slow
def test_a_worker_whose_retries_run_out_exits_with_one_line(
    monkeypatch, tmp_path, private_postgres
) -> None:
    url = private_postgres.url
    space = gated_space(tmp_path, monkeypatch)
    tune(space, storage=url, study="gone", trials=4, create_only=True)
    args = ("worker", "--study", "gone", "--storage", url, "--plugin", "gate_plugin")
    proc = start(tmp_path, *args, "--heartbeat", "1", "--db-retry", "2", name="w")
    wait_until(
        "the worker inside a trial",
        lambda: any(t.state == TrialState.RUNNING for t in trials(url, "gone")),
    )
    private_postgres.stop()  # and it does not come back while the worker waits
    gate(tmp_path).unlink()
    code = proc.wait(timeout=120)
    err = (tmp_path / "w.err").read_text()
    assert code == 2, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("fedhpo: error: the database stayed unreachable"), last
    assert "start the worker again" in last and "--db-retry" in last, last
    private_postgres.start()
    # the abandoned trial is still RUNNING: the next worker fails it once its heartbeat is
    # stale and retries its parameters (the kill tests cover that path)
    assert [t.state for t in trials(url, "gone")].count(TrialState.RUNNING) == 1
