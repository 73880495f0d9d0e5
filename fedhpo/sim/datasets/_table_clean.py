"""Checking and cleaning read tables: bad values are errors naming file, column and row;
rows with a missing value ('?' or empty) are dropped and counted, never silently."""

from __future__ import annotations

import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedhpo.errors import DataError

_FIX = "correct it, or write '?' (or leave it empty) to mark it missing"


@dataclass(frozen=True)
class Table:
    """A table as read (columns as text, or typed from Parquet) and where its rows come from."""

    frame: Any
    source: str
    key: str
    """The option naming the file: data.options.path or data.options.test_path."""
    first_line: int | None = None
    """File line of data row 0 (CSV); None for Parquet, which has no lines."""

    def where(self, position: int) -> tuple[str, int | None]:
        """'row N' (1-based data row) and the file line of the row at ``position``."""
        line = None if self.first_line is None else self.first_line + position
        return f"row {position + 1}", line

    def error(self, position: int, message: str) -> DataError:
        """A DataError on this file at the line of the row at ``position``."""
        return DataError(message, source=self.source, line=self.where(position)[1], key=self.key)

    def cell_error(self, position: int, column: Any, problem: str) -> DataError:
        row = self.where(position)[0]
        return self.error(position, f"column {_name(column)}, {row}: {problem}; {_FIX}")


def _name(column: Any) -> str:
    return repr(column) if isinstance(column, str) else str(column)


def is_numeric(column: Any) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column))


def _text(column: Any) -> Any:
    """A text column stripped, with '?' and '' as missing."""
    text = column.astype("string").str.strip()
    return text.mask((text == "?") | (text == ""))


def _numbers(text: Any) -> tuple[Any, Any]:
    """(float values, mask of entries written as numbers, NaN and inf included)."""
    import pandas as pd

    values = pd.to_numeric(text.astype(object), errors="coerce").astype(float)
    nan_word = text.str.fullmatch(r"[+-]?nan", case=False).fillna(False).astype(bool)
    return values, values.notna() | nan_word


def numeric_columns(frames: Sequence[Any], ids: Collection[Any] = ()) -> set[Any]:
    """Columns to read as numbers: typed numeric (Parquet), or text that is mostly numbers in
    all ``frames`` together (a column of '9th', '10th' stays text: categories). Id columns
    (``ids``) are numbers only if every value is one."""
    import pandas as pd

    out = set()
    for col in frames[0].columns:
        if all(is_numeric(f[col]) for f in frames):
            out.add(col)
            continue
        text = pd.concat([_text(f[col]) for f in frames], ignore_index=True)
        present = int(text.notna().sum())
        numbers = int(_numbers(text)[1].sum())
        if present and (numbers == present if col in ids else 2 * numbers > present):
            out.add(col)
    return out


def _numeric(table: Table, col: Any) -> Any:
    """Column ``col`` as floats (NaN: missing); a non-number or non-finite value is an error."""
    column = table.frame[col]
    if is_numeric(column):
        values = column.astype(float)  # Parquet nulls read as NaN: missing
        written = values.notna()
        shown = values.astype("string")
    else:
        text = _text(column)
        values, written = _numbers(text)
        bad = text.notna() & ~written
        if bad.any():
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            raise table.cell_error(pos, col, f"{text.iloc[pos]!r} is not a number")
        shown = text.map(repr, na_action="ignore")
    infinite = written.to_numpy() & ~np.isfinite(values.fillna(0.0).to_numpy())
    infinite |= written.to_numpy() & values.isna().to_numpy()
    if infinite.any():
        pos = int(np.flatnonzero(infinite)[0])
        raise table.cell_error(pos, col, f"{shown.iloc[pos]} is not a finite number")
    return values


def checked_frame(table: Table, numeric: set[Any]) -> Any:
    """The table with numeric columns as floats and text stripped ('?'/'' -> missing)."""
    frame = table.frame.copy()
    for col in frame.columns:
        frame[col] = _numeric(table, col) if col in numeric else _text(frame[col])
    return frame


def drop_missing(table: Table, frame: Any) -> tuple[Any, int]:
    """(rows without a missing value, how many were dropped); blank lines are no rows at all.

    Every drop is reported in one warning naming the file, the count per column and the first
    dropped row.
    """
    missing = frame.isna()
    blank = missing.all(axis=1).to_numpy()
    dropped = missing.any(axis=1).to_numpy() & ~blank
    if dropped.any():
        per_column = missing[dropped].sum()
        counts = ", ".join(f"{_name(c)} ({int(n)})" for c, n in per_column.items() if n)
        row, line = table.where(int(np.flatnonzero(dropped)[0]))
        first = row if line is None else f"{row}, line {line}"
        warnings.warn(
            f"{table.source}: dropped {int(dropped.sum())} of {int((~blank).sum())} rows with a "
            f"missing value ('?' or empty), by column: {counts}; first: {first}",
            stacklevel=3,
        )
    return frame[~blank & ~dropped], int(dropped.sum())


def check_clients(table: Table, before: Any, after: Any, col: Any) -> None:
    """Every client of the table must keep a complete row after dropping missing values."""
    kept = set(after[col].dropna().unique())
    for client in before[col].dropna().unique():
        if client in kept:
            continue
        positions = np.flatnonzero((before[col] == client).to_numpy())
        rows = ", ".join(str(p + 1) for p in positions[:10])
        msg = (
            f"client {client!r} (column {_name(col)}) has no complete row: its rows {rows} "
            "all miss a value ('?' or empty); fill them in or remove the client's rows"
        )
        raise table.error(int(positions[0]), msg)
