"""The errors fedhpo raises on bad input; the CLI prints them as one line and exits 2.
Notes (``warnings.warn``: rows dropped, a setting clamped) print as one line too."""

from __future__ import annotations

import sys
import unicodedata
from typing import TextIO


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped (``\\n``, ``\\x85``)."""
    if text.isprintable():
        return text
    return "".join(
        c
        if c.isprintable() or c == " " or unicodedata.category(c) not in ("Cc", "Zl", "Zp")
        else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def show_note(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """A warning as one plain line, without the source line that raised it (what the CLI,
    and the job processes it starts, install as ``warnings.showwarning``)."""
    print(f"fedhpo: note: {message}", file=file or sys.stderr)


class FedhpoError(Exception):
    """Base class: a problem the user can fix (bad config, space file, data path, study name).

    ``str(error)`` is one line: where (file, line, key), what is wrong, and how to fix it.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        source: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.key = key
        self.source = source
        self.line = line

    def located(
        self, *, source: str | None = None, line: int | None = None, key_prefix: str | None = None
    ) -> FedhpoError:
        """Return a copy of this error with the file, line or an outer key path filled in."""
        key = self.key
        if key_prefix:
            key = f"{key_prefix}.{key}" if key else key_prefix
        return type(self)(
            self.message,
            key=key,
            source=self.source or source,
            line=self.line if self.line is not None else line,
        )

    def __str__(self) -> str:
        where = ""
        if self.source:
            where = self.source if self.line is None else f"{self.source}:{self.line}"
            where += ": "
        key = f"`{self.key}`: " if self.key else ""
        return one_line(f"{where}{key}{self.message}")


class ConfigError(FedhpoError):
    """A run config (YAML file, ``--set`` override or dict) is invalid."""


class SearchSpaceError(FedhpoError):
    """A search-space file is invalid."""


class DataError(FedhpoError):
    """A dataset cannot be built: missing file, wrong format, bad options."""


class DataMissingError(DataError):
    """A dataset's files are not on this machine (no such file or folder): checks made
    before a study leave the data to whoever builds it, where it may be."""


class StudyError(FedhpoError):
    """A study cannot be opened, found or used as asked."""


class OutputError(FedhpoError):
    """An output path (a run's folder, a report's folder, an exported config) cannot be written."""
