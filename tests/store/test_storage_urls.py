"""Storage URLs that cannot hold a study say so in one line, before anything is written: an
in-memory SQLite database, postgres://, an unknown scheme, a study file or folder that cannot
be written. Commands that only read a study write nothing, so a read-only study can be read."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

from fedhpo.cli.main import main
from fedhpo.errors import StudyError
from fedhpo.store import open_storage
from fedhpo.store.lock import lock_path

READ_ONLY = (
    "is read-only: fedhpo tune and fedhpo worker write the study there; give a writable copy "
    "or fix its permissions"
)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out + err


def _error(text: str) -> str:
    """The one error line of a command's output."""
    errors = [line for line in text.splitlines() if line.startswith("fedhpo: error:")]
    assert len(errors) == 1 and "Traceback" not in text, text
    return errors[0]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


# --- in-memory SQLite: each open_storage would get a new, empty database -------------------

IN_MEMORY = [
    "sqlite:///:memory:",
    "sqlite://",
    "sqlite:///",
    "sqlite+pysqlite:///:memory:",
    "sqlite:///file::memory:?uri=true",
    "sqlite:///file:study?mode=memory&cache=shared&uri=true",
]


@pytest.mark.parametrize("existing", [False, True])
@pytest.mark.parametrize("url", IN_MEMORY)
def test_an_in_memory_sqlite_database_is_refused(url: str, existing: bool) -> None:
    with pytest.raises(StudyError) as info:
        open_storage(url, existing=existing)
    assert info.value.key == "--storage"
    assert str(info.value) == (
        f"`--storage`: an in-memory SQLite database ({url}) cannot hold a study that several "
        "processes and commands share; give a file, e.g. sqlite:///fedhpo.db"
    )


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://"])
@pytest.mark.parametrize("command", [["tune", "--trials", "2"], ["worker", "--study", "w"]])
def test_tune_and_worker_refuse_an_in_memory_database(
    capsys, space: Path, tmp_path: Path, command: list[str], url: str
) -> None:
    before = _files(tmp_path)
    code, text = _cli(capsys, *command, "--space", str(space), "--storage", url)
    assert code == 2
    assert "in-memory SQLite database" in _error(text)
    assert _files(tmp_path) == before


# --- postgres:// and other schemes SQLAlchemy does not know ---------------------------------


@pytest.mark.parametrize(
    ("url", "fixed"),
    [
        ("postgres://user@host/db", "postgresql://user@host/db"),
        ("postgres://user:secret@host:5432/db", "postgresql://user:***@host:5432/db"),
        ("postgres+psycopg2://user@host/db", "postgresql+psycopg2://user@host/db"),
    ],
)
def test_postgres_scheme_names_the_right_one(url: str, fixed: str) -> None:
    with pytest.raises(StudyError) as info:
        open_storage(url)
    assert str(info.value) == (
        "`--storage`: the scheme is postgresql://, not postgres:// (SQLAlchemy dropped that "
        f"alias); give '{fixed}'"
    )


def test_an_unknown_scheme_lists_the_ones_that_work(capsys) -> None:
    code, text = _cli(capsys, "studies", "--storage", "mongodb://u:secret@host/db")
    assert code == 2 and "secret" not in text
    assert _error(text) == (
        "fedhpo: error: `--storage`: unknown database scheme 'mongodb://' in "
        "'mongodb://u:***@host/db'; use sqlite:///path/to/file.db or "
        "postgresql://user@host:5432/dbname"
    )


# --- a study file or folder that cannot be written ------------------------------------------


def _deny_writes(monkeypatch: pytest.MonkeyPatch, denied: Path) -> None:
    """os.access says ``denied`` cannot be written (as it does for a user without the right;
    root may write anything, so a chmod would not show it)."""
    access = os.access

    def fake(path: str | os.PathLike[str], mode: int, *args: Any, **kwargs: Any) -> bool:
        if mode & os.W_OK and Path(path).resolve() == denied.resolve():
            return False
        return access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", fake)


def _plain_study(path: Path) -> None:
    """A study made by plain Optuna: rollback journal, as SQLite starts a file."""
    _add_study(optuna.storages.RDBStorage(f"sqlite:///{path}"))


def _add_study(storage: optuna.storages.BaseStorage) -> None:
    """Study "t" with one queued trial in ``storage``, which is then closed."""
    optuna.create_study(study_name="t", storage=storage).enqueue_trial({"x": 1.0})
    assert isinstance(storage, optuna.storages.RDBStorage)
    storage.engine.dispose()


def test_tune_on_a_read_only_study_file_says_so_and_writes_nothing(
    capsys, space: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "study.db"
    _plain_study(db)
    before = _files(tmp_path)
    _deny_writes(monkeypatch, db)
    code, text = _cli(capsys, "tune", "--space", str(space), "--storage", f"sqlite:///{db}")
    assert code == 2
    assert _error(text) == f"fedhpo: error: `--storage`: {str(db)!r} {READ_ONLY}"
    assert _files(tmp_path) == before  # no WAL switch, no journal or lock file


def test_worker_in_a_read_only_folder_says_so_and_creates_nothing(
    capsys, space: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "studies"
    folder.mkdir()
    _deny_writes(monkeypatch, folder)
    url = f"sqlite:///{folder / 'new.db'}"
    code, text = _cli(capsys, "worker", "--study", "w", "--space", str(space), "--storage", url)
    assert code == 2
    assert _error(text) == (
        f"fedhpo: error: `--storage`: folder {str(folder)!r} is read-only: fedhpo tune and "
        "fedhpo worker write the study and its journal and lock files there; give a file in a "
        "writable folder or fix its permissions"
    )
    assert list(folder.iterdir()) == []


# --- commands that only read ----------------------------------------------------------------


def _journal_mode(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as conn:  # the last one out removes WAL files
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


def test_readers_leave_the_study_file_as_it_is(capsys, tmp_path: Path) -> None:
    db = tmp_path / "study.db"
    _plain_study(db)
    before = _files(tmp_path)
    storage = open_storage(f"sqlite:///{db}", existing=True)
    assert optuna.get_all_study_names(storage) == ["t"]
    assert len(optuna.load_study(study_name="t", storage=storage).trials) == 1
    assert isinstance(storage, optuna.storages.RDBStorage)
    storage.engine.dispose()
    code, text = _cli(capsys, "studies", "--storage", f"sqlite:///{db}")
    assert code == 0, text
    assert _journal_mode(db) == "delete"  # a writer switches it to WAL, not a reader
    assert _files(tmp_path) == before


def _unprivileged() -> list[str]:
    """A command prefix under which file permissions hold: none for a user; for root (who may
    write anything), setpriv without the capabilities that override permissions."""
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--"]
    if shutil.which("setpriv") is None or subprocess.run([*prefix, "true"]).returncode != 0:
        pytest.skip("running as root, which ignores file permissions, and setpriv cannot drop that")
    return prefix


def _fedhpo(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    command = [*_unprivileged(), sys.executable, "-m", "fedhpo.cli.main", *argv]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture
def read_only_study(tmp_path: Path) -> Iterator[Path]:
    """A study as fedhpo's writers leave it (WAL mode) in a folder nobody may write."""
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "study.db"
    _add_study(open_storage(f"sqlite:///{db}"))
    assert _journal_mode(db) == "wal" and sorted(os.listdir(folder)) == ["study.db"]
    folder.chmod(0o555)
    db.chmod(0o444)
    yield db
    folder.chmod(0o755)


def test_a_study_in_a_read_only_folder_can_be_read(tmp_path: Path, read_only_study: Path) -> None:
    done = _fedhpo(tmp_path, "studies", "--storage", f"sqlite:///{read_only_study}")
    assert done.returncode == 0, done.stderr
    assert "│ t " in done.stdout
    assert sorted(os.listdir(read_only_study.parent)) == ["study.db"]


def test_a_writer_on_a_read_only_study_says_so(space: Path, read_only_study: Path) -> None:
    url = f"sqlite:///{read_only_study}"
    done = _fedhpo(space.parent, "tune", "--space", str(space), "--study", "t", "--storage", url)
    assert done.returncode == 2
    assert (
        _error(done.stderr) == f"fedhpo: error: `--storage`: {str(read_only_study)!r} {READ_ONLY}"
    )


# --- SQLite URI filenames: one file, one lock, whichever way it is spelled ------------------


def _spellings(db: Path) -> list[str]:
    return [
        f"sqlite:///{db}",
        f"sqlite:///file:{db}?uri=true",
        f"sqlite:///{db.as_uri()}?uri=true",
        f"sqlite:///file:{str(db).replace('study', 'st%75dy')}?uri=true",  # percent-encoded
    ]


def test_a_uri_filename_names_the_same_file_and_lock(
    capsys, space: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "study.db"
    assert {lock_path(url) for url in _spellings(db)} == {Path(f"{db}.lock")}
    monkeypatch.chdir(tmp_path)
    relative = "sqlite:///file:study.db?uri=true"
    assert lock_path(relative) == Path("study.db.lock")
    code, text = _cli(capsys, "tune", "--space", str(space), "--trials", "1", "--storage", relative)
    assert code == 0, text
    made = {p.name for p in tmp_path.iterdir()}
    assert {"study.db", "study.db.lock"} <= made and not [n for n in made if "file:" in n]


def test_a_uri_filename_in_a_missing_folder_names_the_folder(capsys, space: Path, tmp_path: Path):
    url = f"sqlite:///{(tmp_path / 'nowhere' / 'study.db').as_uri()}?uri=true"
    code, text = _cli(capsys, "tune", "--space", str(space), "--trials", "1", "--storage", url)
    assert code == 2
    assert _error(text) == (
        f"fedhpo: error: `--storage`: folder {str(tmp_path / 'nowhere')!r} does not exist; "
        "create it or give another --storage"
    )
