"""Database calls that outlive a server restart: retry connection errors with backoff."""

from __future__ import annotations

import random
import sqlite3
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import exc as sa_exc

T = TypeVar("T")

#: Set when the process is asked to stop (a worker's SIGINT/SIGTERM): a call waiting for
#: the database gives up at once, raising its last error, instead of waiting out the policy.
GIVE_UP = threading.Event()

#: Errors that mean "the database is not reachable right now", not "the request is wrong".
#: SQLite's "database is locked" is an OperationalError too, and is worth waiting out.
TRANSIENT = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError)

#: SQLite OperationalErrors that waiting does not fix: the file or its folder is read-only,
#: or the file cannot be opened at all (SQLITE_READONLY, SQLITE_CANTOPEN and their messages).
PERMANENT_SQLITE_CODES = frozenset({8, 14})
PERMANENT_SQLITE_MESSAGES = ("attempt to write a readonly database", "unable to open database file")


@dataclass(frozen=True)
class RetryPolicy:
    """How long a worker keeps retrying a failing database call before it gives up.

    Waits grow from ``first`` seconds, doubling up to ``cap``, with jitter, until
    ``total`` seconds have passed since the first failure.
    """

    total: float = 300.0
    first: float = 0.5
    cap: float = 10.0

    def waits(self) -> list[float]:
        """The successive waits (seconds) before each retry."""
        out: list[float] = []
        wait, spent = self.first, 0.0
        while spent < self.total:
            out.append(min(wait, self.total - spent))
            spent += out[-1]
            wait = min(wait * 2, self.cap)
        return out


def unwritable_sqlite(error: BaseException | None) -> bool:
    """True for a SQLite error that says the file cannot be written or opened at all."""
    if not isinstance(error, sqlite3.Error):
        return False
    code = getattr(error, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None and (code & 0xFF) in PERMANENT_SQLITE_CODES:
        return True
    return any(text in str(error) for text in PERMANENT_SQLITE_MESSAGES)


def is_transient(exc: BaseException) -> bool:
    """True if ``exc`` or one of its causes is a connection-level database error (not one of
    SQLite's that no wait fixes, such as "attempt to write a readonly database")."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TRANSIENT):
            return not (isinstance(seen, sa_exc.DBAPIError) and unwritable_sqlite(seen.orig))
        seen = seen.__cause__ or seen.__context__
    return False


def first_line(exc: BaseException) -> str:
    """The driver's own message (e.g. "connection refused"), without SQLAlchemy's wrapping."""
    seen: BaseException | None = exc
    while seen is not None and not isinstance(seen, sa_exc.DBAPIError):
        seen = seen.__cause__ or seen.__context__
    text = str(seen.orig if seen is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def warn(message: str) -> None:
    """One plain line on stderr (workers run unattended; their log is the record)."""
    print(f"fedhpo: {message}", file=sys.stderr, flush=True)


def call_with_retry(fn: Callable[[], T], policy: RetryPolicy | None, what: str = "call") -> T:
    """``fn()``, retried with backoff while it raises a transient database error.

    The first failure and the recovery are reported on stderr; after ``policy.total``
    seconds, or at once when :data:`GIVE_UP` is set, the last error is raised.
    """
    if policy is None:
        return fn()
    waits = policy.waits()
    for attempt in range(len(waits) + 1):
        try:
            result = fn()
        except Exception as exc:
            if not is_transient(exc) or attempt == len(waits):
                raise
            if GIVE_UP.is_set():
                raise
            if attempt == 0:
                warn(f"database unavailable during {what} ({first_line(exc)}); retrying")
            if GIVE_UP.wait(waits[attempt] * random.uniform(0.8, 1.0)):
                raise
            continue
        if attempt > 0:
            warn(f"database back after {attempt} retries ({what})")
        return result
    raise AssertionError("unreachable")
