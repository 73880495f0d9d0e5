"""Retrying database calls: transient connection errors are waited out, others are not."""

from __future__ import annotations

import optuna
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from fedhpo.store import RetryPolicy
from fedhpo.store.retry import call_with_retry, is_transient

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
