"""A study-wide lock shared by every worker, on one machine or many: one claim at a time."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from collections.abc import Iterator
from pathlib import Path

import optuna
import sqlalchemy
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from fedhpo.errors import StudyError
from fedhpo.store._storage import mask_url, sqlite_file
from fedhpo.store.retry import RetryPolicy, call_with_retry, first_line


def lock_key(study: str) -> int:
    """A signed 64-bit key for PostgreSQL advisory locks, derived from the study name."""
    digest = hashlib.sha256(f"fedhpo-claim:{study}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_path(url: str) -> Path | None:
    """The lock file next to a SQLite database file (None for other backends)."""
    path = sqlite_file(url)
    return None if path is None else Path(f"{path}.lock")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes or the process dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class StudyLock:
    """Serializes what must not interleave between workers of one study: failing stale trials,
    checking the budget and claiming the next trial.

    SQLite: ``flock`` on ``<file>.db.lock`` (the processes of one machine). PostgreSQL: a
    session advisory lock keyed by the study name, taken on a connection of its own (kept
    between claims), so the server releases it if the worker dies. Other backends: no lock (the budget may then be overrun by
    up to one trial per worker).
    """

    def __init__(
        self, url: str | optuna.storages.BaseStorage, study: str, retry: RetryPolicy | None = None
    ) -> None:
        self.key = lock_key(study)
        self.retry = retry
        self.url = url if isinstance(url, str) else "<storage object>"
        self.path: Path | None = None
        self.engine: sqlalchemy.Engine | None = None
        self._conn: sqlalchemy.Connection | None = None
        if not isinstance(url, str):
            return  # a storage object (in memory, one process) needs no lock
        self.path = lock_path(url)
        if make_url(url).get_backend_name() == "postgresql":
            self.engine = sqlalchemy.create_engine(url, poolclass=NullPool)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the duration of the ``with`` block."""
        if self.path is not None:
            with _file_lock(self.path):
                yield
        elif self.engine is not None:
            try:
                call_with_retry(self._acquire, self.retry, "study lock")
            except Exception as exc:  # after the retries, if any
                raise StudyError(
                    f"cannot lock the study in {mask_url(self.url)}: {first_line(exc)}",
                    key="--storage",
                ) from None
            try:
                yield
            finally:
                self._release()
        else:
            yield

    def _acquire(self) -> None:
        """Lock on the kept connection (opened again if the server dropped it)."""
        assert self.engine is not None
        try:
            if self._conn is None:
                self._conn = self.engine.connect()
            self._conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
            self._conn.commit()
        except Exception:
            self._drop()
            raise

    def _release(self) -> None:
        try:
            assert self._conn is not None
            self._conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            self._conn.commit()
        except Exception:  # a lost connection released the lock already
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None
