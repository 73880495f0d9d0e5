"""Storage URLs -> Optuna RDB storages tuned for several writer processes."""

from __future__ import annotations

import re
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import optuna
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from fedhpo.errors import StudyError

DEFAULT_STORAGE = "sqlite:///fedhpo.db"
SQLITE_BUSY_TIMEOUT_S = 120

_QUERY_PASSWORD = re.compile(r"(?i)([?&](?:password|passwd|pwd)=)[^&#]*")


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (``postgresql://u:***@h/db``), for
    anything fedhpo prints, logs or stores. SQLite URLs (paths) are returned unchanged."""
    scheme, sep, rest = url.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][\w+.-]*", scheme) or scheme.startswith("sqlite"):
        return url
    query = rest.find("?")
    at = rest.rfind("@", 0, query if query >= 0 else len(rest))  # a raw '@' may be in it
    if at >= 0 and ":" in rest[:at]:
        rest = rest[: rest.index(":") + 1] + "***" + rest[at:]
    return scheme + "://" + _QUERY_PASSWORD.sub(r"\1***", rest)


def _masked(text: str, url: str) -> str:
    """``text`` (e.g. a driver's error message) with ``url`` and its password masked."""
    text = text.replace(url, mask_url(url))
    try:
        password = make_url(url).password
    except ArgumentError:
        return text
    return text.replace(str(password), "***") if password else text


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def prepare_sqlite(url: str) -> None:
    """Create the SQLite file's folder and switch it to WAL journaling (persistent), so
    readers never block the writer and several trial processes can share one file."""
    path = _sqlite_path(url)
    if path is None:
        return
    if not path.parent.exists():
        raise StudyError(
            f"folder {str(path.parent)!r} does not exist; create it or give another --storage",
            key="--storage",
        )
    with sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


def open_storage(
    url: str | optuna.storages.BaseStorage = DEFAULT_STORAGE, *, heartbeat: bool = False
) -> optuna.storages.BaseStorage:
    """An Optuna RDBStorage for ``url`` (sqlite:///file.db or postgresql://...); a storage
    object (e.g. ``optuna.storages.InMemoryStorage()`` in a benchmark) is returned as is.

    SQLite gets a long busy timeout and WAL mode so that ``--jobs N`` processes can write to
    one file; ``heartbeat`` marks trials of a killed worker as failed instead of running
    forever.
    """
    if isinstance(url, optuna.storages.BaseStorage):
        return url
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        raise StudyError(
            f"cannot parse storage URL {mask_url(url)!r}; use sqlite:///path/to/file.db or "
            "postgresql://user@host:5432/dbname",
            key="--storage",
        ) from None
    engine_kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        prepare_sqlite(url)
        engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=30 if heartbeat else None,
                grace_period=120 if heartbeat else None,
            )
    except ImportError as exc:
        raise StudyError(
            f"no database driver for {backend!r}: {exc}; install it "
            "(for PostgreSQL: pip install 'fedhpo[postgres]')",
            key="--storage",
        ) from None
    except Exception as exc:  # sqlalchemy.exc.OperationalError and friends
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StudyError(
            f"cannot open storage {mask_url(url)!r}: {_masked(first, url)}", key="--storage"
        ) from None
