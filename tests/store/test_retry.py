"""Retrying database calls: transient connection errors are waited out, others are not."""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from sqlalchemy.exc import IntegrityError, OperationalError

from fedhpo.store import RetryPolicy
from fedhpo.store.retry import call_with_retry, is_transient, unwritable_sqlite

FAST = RetryPolicy(total=0.2, first=0.01, cap=0.05)


def _down() -> Exception:
    try:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))
    except OperationalError as exc:
        wrapped = optuna.exceptions.StorageInternalError("commit failed")
        wrapped.__cause__ = exc
        return wrapped


def test_waits_grow_double_up_to_the_cap_and_sum_to_the_total() -> None:
    waits = RetryPolicy(total=10, first=0.5, cap=2).waits()
    assert waits[:4] == [0.5, 1.0, 2.0, 2.0]
    assert sum(waits) == pytest.approx(10)


def test_a_transient_error_is_retried_until_the_call_succeeds(capsys) -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _down()
        return "ok"

    assert call_with_retry(flaky, FAST, "test call") == "ok"
    assert len(calls) == 3
    err = capsys.readouterr().err
    assert "database unavailable during test call (connection refused)" in err
    assert "database back after 2 retries" in err


def test_other_errors_and_exhausted_retries_raise() -> None:
    calls = []

    def wrong() -> None:
        calls.append(1)
        raise IntegrityError("INSERT", {}, Exception("duplicate"))

    with pytest.raises(IntegrityError):
        call_with_retry(wrong, FAST)
    assert len(calls) == 1 and not is_transient(IntegrityError("x", {}, Exception()))

    def down() -> None:
        calls.append(1)
        raise _down()

    with pytest.raises(optuna.exceptions.StorageInternalError):
        call_with_retry(down, FAST)
    assert len(calls) == 1 + len(FAST.waits()) + 1


def _sqlite_error(url: str, statement: str) -> Exception:
    """The error Optuna raises when ``statement`` fails on the SQLite database at ``url``: a
    real driver error, wrapped as Optuna's storage wraps it."""
    engine = sqlalchemy.create_engine(url, connect_args={"timeout": 0})
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(statement))
            conn.commit()
    except OperationalError as exc:
        wrapped = optuna.exceptions.StorageInternalError("commit failed")
        wrapped.__cause__ = exc
        return wrapped
    finally:
        engine.dispose()
    raise AssertionError(f"{statement!r} did not fail on {url}")


def _study_file(tmp_path: Path) -> Path:
    path = tmp_path / "study.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE trials (n INTEGER)")
    return path


def _read_only(tmp_path: Path) -> Exception:
    path = _study_file(tmp_path)  # opened read-only: root's permissions cannot override that
    return _sqlite_error(f"sqlite:///file:{path}?mode=ro&uri=true", "INSERT INTO trials VALUES (1)")


def _cannot_open(tmp_path: Path) -> Exception:
    return _sqlite_error(f"sqlite:///{tmp_path / 'gone' / 'study.db'}", "SELECT 1")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_read_only, "attempt to write a readonly database"),
        (_cannot_open, "unable to open database file"),
    ],
)
def test_a_sqlite_file_that_cannot_be_written_is_not_retried(
    tmp_path: Path, capsys, make: Callable[[Path], Exception], message: str
) -> None:
    error = make(tmp_path)
    assert message in str(error.__cause__)
    calls = []

    def write() -> None:
        calls.append(1)
        raise error

    with pytest.raises(optuna.exceptions.StorageInternalError):
        call_with_retry(write, FAST, "trial state update")
    assert len(calls) == 1 and not is_transient(error)
    assert "database unavailable" not in capsys.readouterr().err


def test_a_locked_sqlite_database_is_still_waited_out(tmp_path: Path) -> None:
    path = _study_file(tmp_path)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        error = _sqlite_error(f"sqlite:///{path}", "SELECT * FROM trials")
    finally:
        holder.close()
    assert "database is locked" in str(error.__cause__)
    assert is_transient(error)


@pytest.mark.parametrize(
    ("message", "unwritable"),
    [
        ("attempt to write a readonly database", True),
        ("unable to open database file", True),
        ("database is locked", False),
        ("disk I/O error", False),
    ],
)
def test_the_message_decides_where_sqlite_gives_no_error_code(message, unwritable) -> None:
    # Python 3.10's sqlite3 errors carry no sqlite_errorcode; one made here has none either
    assert unwritable_sqlite(sqlite3.OperationalError(message)) is unwritable
    assert not unwritable_sqlite(RuntimeError(message))


def test_a_stop_request_ends_the_wait_for_the_database(monkeypatch) -> None:
    # SIGTERM to a worker waiting out an outage was ignored until --db-retry ran out (300 s
    # by default: past a batch scheduler's grace period)
    from fedhpo.store import retry
    from fedhpo.tune._signals import Stopper

    calls = []

    def down() -> None:
        calls.append(1)
        raise _down()

    stopper = Stopper()
    with stopper.installed():
        os.kill(os.getpid(), signal.SIGTERM)  # between trials: only asks the worker to stop
        assert stopper.requested == "SIGTERM" and retry.GIVE_UP.is_set()
        with pytest.raises(optuna.exceptions.StorageInternalError):
            call_with_retry(down, RetryPolicy(total=300.0), "trial claim")
    assert len(calls) == 1  # no wait: the first failure is the last
    assert not retry.GIVE_UP.is_set()  # another worker in this process waits again


def test_a_trial_stopped_by_a_first_signal_keeps_its_retries_a_second_ends_them() -> None:
    # the writes that fail the stopped trial and queue it again may wait for the database;
    # a second signal is the way out of that wait
    from fedhpo.store import retry
    from fedhpo.tune._signals import Stopper

    stopper = Stopper()
    with stopper.installed():
        with pytest.raises(KeyboardInterrupt), stopper.trial():
            os.kill(os.getpid(), signal.SIGINT)
        assert stopper.requested == "SIGINT" and not retry.GIVE_UP.is_set()
        with pytest.raises(KeyboardInterrupt), stopper.shielded():
            os.kill(os.getpid(), signal.SIGINT)  # deferred to the end of the block
            assert retry.GIVE_UP.is_set()
