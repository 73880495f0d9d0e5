"""Storage URLs -> Optuna RDB storages tuned for many writer processes and machines."""

from __future__ import annotations

import os
import re
import shlex
import sqlite3
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import optuna
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from fedhpo.errors import StudyError
from fedhpo.store._rdb import FedhpoStorage
from fedhpo.store.budget import RetryTrial
from fedhpo.store.retry import RetryPolicy, unwritable_sqlite

DEFAULT_STORAGE = "sqlite:///fedhpo.db"
SQLITE_BUSY_TIMEOUT_S = 120

_QUERY_PASSWORD = re.compile(r"(?i)([?&](?:password|passwd|pwd)=)[^&#]*")


def storage_flag(url: str | None) -> str:
    """`` --storage URL`` for a command fedhpo suggests (password masked, shell-quoted), so
    that it can be pasted; empty for the default database or an unknown URL."""
    if url is None or url == DEFAULT_STORAGE:
        return ""
    return f" --storage {shlex.quote(mask_url(url))}"


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


#: Optuna's study-name column (``String(512)``): PostgreSQL refuses a longer name.
MAX_STUDY_NAME = 512


def check_study_name(name: str) -> None:
    """StudyError unless ``name`` can name a study in every storage and be printed as one
    line: 1 to 512 characters, no line break or other control character."""
    if not name:
        problem = "is empty"
    elif len(name) > MAX_STUDY_NAME:
        problem = f"has {len(name)} characters; at most {MAX_STUDY_NAME} fit in a study database"
    elif not all(c.isprintable() or c == " " for c in name):
        problem = "has a line break or control character"
    else:
        return
    raise StudyError(f"the study name {name[:40]!r} {problem}; give another", key="--study")


_IN_MEMORY = (
    "an in-memory SQLite database ({url}) cannot hold a study that several processes and "
    "commands share; give a file, e.g. sqlite:///fedhpo.db"
)


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite ``url``, however it is spelled (``sqlite:///x.db``, or a
    URI filename with ``uri=true``: ``file:x.db``, ``file:///abs/x.db``, percent-encoded);
    None for other backends and for an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    name = parsed.database or ""
    if name.startswith("file:") and parsed.query.get("uri") == "true":
        name = name[len("file:") :]
        if name.startswith("//"):  # file://host/path: SQLite accepts only "" or "localhost"
            name = name[name.find("/", 2) :] if "/" in name[2:] else ""
        name = unquote(name)
    if name in ("", ":memory:") or parsed.query.get("mode") == "memory":
        return None
    return Path(name)


def _sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite ``url`` (None for other backends). StudyError for an
    in-memory database (``sqlite://``, ``sqlite:///:memory:``, a ``mode=memory`` URI): every
    :func:`open_storage` would get a new, empty one."""
    path = sqlite_file(url)
    if path is None and make_url(url).get_backend_name() == "sqlite":
        raise StudyError(_IN_MEMORY.format(url=url), key="--storage")
    return path


def _check_writable(path: Path) -> None:
    """StudyError unless this process can write ``path`` (if it exists) and its folder (for
    SQLite's journal files and fedhpo's lock file), before anything is written."""
    if path.exists() and not os.access(path, os.W_OK):
        raise StudyError(
            f"{str(path)!r} is read-only: fedhpo tune and fedhpo worker write the study there; "
            "give a writable copy or fix its permissions",
            key="--storage",
        )
    folder = path.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StudyError(
            f"folder {str(folder)!r} is read-only: fedhpo tune and fedhpo worker write the "
            "study and its journal and lock files there; give a file in a writable folder or "
            "fix its permissions",
            key="--storage",
        )


def prepare_sqlite(url: str, *, write: bool = True) -> str:
    """Check the SQLite file of ``url`` before anything is written to it; the URL to open.

    ``write`` (commands that run trials): the file and its folder must be writable, and the
    file is switched to WAL journaling (persistent), so readers never block the writer and
    several trial processes can share one file. Otherwise (commands that only read) the file
    is only read, and left as it is: a study in a read-only file or folder can be read
    (:func:`_reader_url`).
    """
    path = _sqlite_path(url)
    if path is None:
        return url
    if not path.parent.exists():
        raise StudyError(
            f"folder {str(path.parent)!r} does not exist; create it or give another --storage",
            key="--storage",
        )
    if path.is_dir():
        raise StudyError(
            f"{str(path)!r} is a folder; give a database file, e.g. {str(path / 'fedhpo.db')!r}",
            key="--storage",
        )
    if write:
        _check_writable(path)
    try:
        if not write:
            return _reader_url(url, path)
        with sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
        return url
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc):
            raise StudyError(
                f"{str(path)!r} is not a SQLite database; give a study database made by "
                "`fedhpo tune`, or a new file name",
                key="--storage",
            ) from None
        raise StudyError(f"cannot open {str(path)!r}: {exc}", key="--storage") from None


def _probe(uri: str) -> None:
    """Read the schema of the SQLite database at ``uri`` (a ``file:`` URI): sqlite3's error
    if it cannot be read, e.g. "file is not a database"."""
    conn = sqlite3.connect(uri, uri=True, timeout=SQLITE_BUSY_TIMEOUT_S)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    finally:
        conn.close()


def _reader_url(url: str, path: Path) -> str:
    """``url``, opened read-only, for a command that only reads ``path``.

    A study in WAL mode (as ``fedhpo tune`` leaves it) needs a ``-shm`` file next to it even
    to be read; in a folder this process cannot write, SQLite then refuses it ("attempt to
    write a readonly database"). If no writer has it open (no ``-wal`` file), the URL of the
    file as immutable is returned instead: read as it is on disk, which is then all of it.
    """
    uri = path.resolve().as_uri()
    try:
        _probe(f"{uri}?mode=ro")
        return url
    except sqlite3.OperationalError as exc:
        if (
            not unwritable_sqlite(exc)
            or os.access(path.parent, os.W_OK)
            or Path(f"{path}-wal").exists()
        ):
            raise
    _probe(f"{uri}?mode=ro&immutable=1")
    query = {"mode": "ro", "immutable": "1", "uri": "true"}
    return URL.create("sqlite", database=uri, query=query).render_as_string(hide_password=False)


def _require_file(url: str) -> None:
    path = _sqlite_path(url)
    if path is not None and not path.exists():
        raise StudyError(
            f"no study database at {str(path)!r} (nothing was created); check the path, or "
            "make a study there with `fedhpo tune --space FILE --storage URL`",
            key="--storage",
        )


@dataclass(frozen=True)
class Liveness:
    """How a worker shows it is alive: a heartbeat every ``interval`` seconds; a RUNNING trial
    whose heartbeat is older than ``grace`` seconds is failed and queued again."""

    interval: int = 10
    grace: int = 120

    def __post_init__(self) -> None:
        if self.interval < 1 or self.grace <= self.interval:
            raise StudyError(
                f"heartbeat interval must be >= 1 s and the grace period longer than it, "
                f"got {self.interval} s and {self.grace} s",
                key="--heartbeat",
            )


def open_storage(
    url: str | optuna.storages.BaseStorage = DEFAULT_STORAGE,
    *,
    liveness: Liveness | None = None,
    retry: RetryPolicy | None = None,
    existing: bool = False,
) -> optuna.storages.BaseStorage:
    """An Optuna RDB storage for ``url`` (sqlite:///file.db or postgresql://...); a storage
    object (e.g. ``optuna.storages.InMemoryStorage()`` in a benchmark) is returned as is.

    SQLite gets a long busy timeout and WAL mode so that ``--jobs N`` processes can write to
    one file. Queued trials are claimed atomically (:class:`FedhpoStorage`). ``liveness``
    turns on heartbeats: trials of a killed worker are failed and queued again instead of
    running forever. ``retry``: calls that fail because the database is unreachable are
    retried with backoff (workers); without it they fail at once (commands that only read).
    ``existing``: a SQLite file that does not exist is an error instead of a new, empty
    database, and the file is only read, never prepared for writing (commands that read a
    study: a mistyped path must not pass for "no studies", and a read-only file can be read).
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
    if backend == "postgres":  # an alias SQLAlchemy dropped, still common in docs and PaaS
        fixed = "postgresql" + url[len("postgres") :]
        raise StudyError(
            f"the scheme is postgresql://, not postgres:// (SQLAlchemy dropped that alias); "
            f"give {mask_url(fixed)!r}",
            key="--storage",
        )
    engine_url = url  # a reader may get another URL of the same file (_reader_url)
    engine_kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        if existing:
            _require_file(url)
        engine_url = prepare_sqlite(url, write=not existing)
        engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    else:
        # A retrying storage notices a dropped connection by the error and reconnects; a
        # ping before every query would cost a round trip per call.
        engine_kwargs = {"pool_pre_ping": retry is None}
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return FedhpoStorage(
                engine_url,
                retry=retry,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=liveness.interval if liveness else None,
                grace_period=liveness.grace if liveness else None,
                heartbeat_stale_trial_callback=RetryTrial() if liveness else None,
            )
    except ImportError as exc:
        raise StudyError(
            f"no database driver for {backend!r}: {exc}; install it "
            "(for PostgreSQL: pip install 'fedhpo[postgres]')",
            key="--storage",
        ) from None
    except NoSuchModuleError:
        raise StudyError(
            f"unknown database scheme {url.partition(':')[0] + '://'!r} in "
            f"{mask_url(url)!r}; use sqlite:///path/to/file.db or "
            "postgresql://user@host:5432/dbname",
            key="--storage",
        ) from None
    except Exception as exc:  # sqlalchemy.exc.OperationalError and friends
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StudyError(
            f"cannot open storage {mask_url(url)!r}: {_masked(first, url)}", key="--storage"
        ) from None
