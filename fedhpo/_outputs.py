"""Output paths checked before any work: a run that cannot save its result is not started."""

from __future__ import annotations

import os
from pathlib import Path

from fedhpo.errors import OutputError


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")  # pragma: no cover - a relative path's parents end at "."


def _check_can_make(path: Path, key: str) -> None:
    """``path`` (a folder, or a file's folder) exists or can be made; nothing is created."""
    anchor = _nearest_existing(path)
    if not anchor.is_dir():
        raise OutputError(
            f"{str(anchor)!r} is a file, so {str(path)!r} cannot be made; give another path",
            key=key,
        )
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise OutputError(
            f"cannot write in {str(anchor)!r} (permission denied); give a path you can write to",
            key=key,
        )


def out_folder(path: str | Path, key: str = "--out") -> Path:
    """``path`` as a folder to write into (made when written); OutputError if it cannot be."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputError(
            f"{str(folder)!r} is a file, not a folder; give a folder to write into "
            "(it is made if missing)",
            key=key,
        )
    _check_can_make(folder, key)
    return folder


def out_file(path: str | Path, key: str = "--out", example: str = "out.yaml") -> Path:
    """``path`` as a file to (over)write; OutputError if it is a folder or cannot be written."""
    file = Path(path)
    if file.is_dir():
        raise OutputError(
            f"{str(file)!r} is a folder; give a file name, e.g. {str(file / example)!r}", key=key
        )
    if file.exists() and not os.access(file, os.W_OK):
        raise OutputError(
            f"cannot write {str(file)!r} (permission denied); give a path you can write to",
            key=key,
        )
    _check_can_make(file.parent, key)
    return file


def writing_error(path: str | Path, exc: OSError, key: str = "--out") -> OutputError:
    """An OSError met while writing ``path`` (a full disk, say), as one line for the CLI."""
    reason = exc.strerror or type(exc).__name__
    return OutputError(f"cannot write {str(path)!r}: {reason}", key=key)
