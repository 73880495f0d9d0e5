"""Tables: CSV (optionally gzipped) or Parquet with a label and an optional client column."""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from fedhpo.errors import DataError, DataMissingError
from fedhpo.sim.data import ArrayData, stream_rng
from fedhpo.sim.datasets._registry import _option, register_dataset, relative_note
from fedhpo.sim.datasets._table_clean import (
    Table,
    check_clients,
    checked_frame,
    drop_missing,
    is_numeric,
    numeric_columns,
)

_TABLE_SUFFIXES = ".csv, .csv.gz or .parquet"
#: Most lines ``skiprows``/``test_skiprows`` skip before the header (pandas holds a set of
#: their numbers, about 60 MB for this many).
MAX_SKIPROWS = 1_000_000


def _read_parquet(path: Path, key: str) -> Any:
    import pandas as pd

    try:
        import pyarrow
    except ImportError:
        raise DataError(
            "reading Parquet needs pyarrow, which is not installed; pip install "
            "'fedhpo[parquet]' (or pyarrow), or convert the file to CSV",
            source=str(path),
            key=key,
        ) from None
    try:
        return pd.read_parquet(path, engine="pyarrow")
    except (ValueError, OSError, pyarrow.ArrowException) as exc:
        raise DataError(f"cannot read as Parquet: {exc}", source=str(path), key=key) from None


def _read_table(path: str, header: bool, skiprows: int, key: str, skip_option: str) -> Table:
    """A CSV (optionally gzipped, read as text) or Parquet file, and where its rows are."""
    import pandas as pd

    file = Path(path)
    if file.is_dir():
        raise DataError(
            f"is a folder, not a file; give a {_TABLE_SUFFIXES} file", source=path, key=key
        )
    if not file.is_file():
        raise DataMissingError(
            f"file not found{relative_note(path)}; give a {_TABLE_SUFFIXES} file",
            source=path,
            key=key,
        )
    if file.suffix.lower() in (".parquet", ".pq"):
        return Table(_read_parquet(file, key), path, key)
    try:
        frame = pd.read_csv(
            file,
            header=0 if header else None,
            skiprows=skiprows,
            skipinitialspace=True,
            dtype=str,
            keep_default_na=False,  # only '?' and empty are missing; 'NaN' is a bad number
            skip_blank_lines=False,  # keeps row -> line exact; blank rows are dropped later
        )
    except (ValueError, OSError, EOFError, zlib.error) as exc:
        detail = " ".join(str(exc).split())
        raise DataError(
            f"cannot read as CSV ({type(exc).__name__}: {detail}); check the header, "
            f"data.options.{skip_option} (lines to skip before it) and that fields are "
            "separated by commas",
            source=path,
            key=key,
        ) from None
    return Table(frame, path, key, first_line=skiprows + 1 + int(header))


def _check_columns(tables: list[Table]) -> None:
    """A test file needs the training file's columns."""
    train, *rest = tables
    for test in rest:
        if set(test.frame.columns) != set(train.frame.columns) or len(test.frame.columns) != len(
            train.frame.columns
        ):
            raise DataError(
                f"the test file has columns {list(test.frame.columns)[:12]} but the training "
                f"file {train.source} has {list(train.frame.columns)[:12]}; both need the same "
                "columns",
                source=test.source,
                key=test.key,
            )


def _column(table: Table, spec: str | int, option: str, header: bool) -> Any:
    """The column label that option ``spec`` (a name, or an index with -1 = last) refers to."""
    columns = list(table.frame.columns)
    key = f"data.options.{option}"
    if isinstance(spec, int):
        if not -len(columns) <= spec < len(columns):
            raise DataError(
                f"column index {spec} is out of range: the file has {len(columns)} columns; "
                f"fix {key}",
                source=table.source,
                key=key,
            )
        return columns[spec]
    _option(header, option, "with header=false columns have no names; give a 0-based index")
    if spec not in columns:
        raise DataError(
            f"no column {spec!r}; the file's columns: {columns[:30]}; fix {key}"
            f"{_separator_hint(table)}",
            source=table.source,
            key=key,
        )
    return spec


def _separator_hint(table: Table) -> str:
    """Advice when the table was read as one column whose text holds another separator."""
    frame = table.frame
    if len(frame.columns) != 1:
        return ""
    text = f"{frame.columns[0]} {frame.iloc[0, 0] if len(frame) else ''}"
    sep = next((s for s in (";", "\t", "|") if s in text), None)
    if sep is None:
        return ""
    return (
        f"; the file was read as one column, whose fields look separated by {sep!r}: "
        "fedhpo reads comma-separated files, so convert it to commas"
    )


def _check_features(table: Table, label: Any, client: Any) -> None:
    """The training table needs a column besides the label and the client column."""
    if any(c not in (label, client) for c in table.frame.columns):
        return
    what = "the label" if client is None else "the label and the client column"
    raise DataError(
        f"the table has no feature columns besides {what}{_separator_hint(table)}",
        source=table.source,
        key=table.key,
    )


def _check_rows(table: Table, kept: Any, dropped: int) -> None:
    """A table needs a complete row (a CSV file of only a header has none)."""
    if len(kept):
        return
    if dropped:
        problem = (
            f"none of its {dropped} rows is complete (each misses a value: '?' or empty); "
            "fill the missing values in"
        )
    else:
        below = "" if table.first_line is None else " below its header"
        problem = f"the file has no data rows{below}; give a table with rows"
    raise DataError(problem, source=table.source, key=table.key)


def _clean(tables: list[Table], client: Any) -> tuple[list[Any], int]:
    """Checked frames without rows that miss a value, and how many rows were dropped."""
    numeric = numeric_columns([t.frame for t in tables], ids={client})
    frames, dropped = [], 0
    for i, table in enumerate(tables):
        checked = checked_frame(table, numeric)
        kept, n = drop_missing(table, checked)
        _check_rows(table, kept, n)
        if client is not None and i == 0:
            check_clients(table, checked, kept, client)
        frames.append(kept)
        dropped += n
    return frames, dropped


def _encode_labels(column: Any, strip: bool) -> tuple[np.ndarray, int]:
    """Labels -> 0..K-1 by sorted unique value (text labels lose a trailing '.' if ``strip``)."""
    import pandas as pd

    if strip and not is_numeric(column):
        column = column.str.rstrip(".").str.strip()
    codes, uniques = pd.factorize(column, sort=True)
    return codes.astype(np.int64), len(uniques)


def _feature_width(frame: Any) -> int:
    return sum(1 if is_numeric(frame[c]) else frame[c].nunique() for c in frame.columns)


def _encode_features(frame: Any, train: np.ndarray, standardize: bool) -> np.ndarray:
    """float32 features: numeric columns (z-scored with training stats), text one-hot."""
    import pandas as pd

    x = np.zeros((len(frame), _feature_width(frame)), dtype=np.float32)
    j = 0
    for col in frame.columns:
        if is_numeric(frame[col]):
            v = frame[col].to_numpy(dtype=np.float64)
            if standardize:
                std = v[train].std()
                v = (v - v[train].mean()) / (std if std > 0 and np.isfinite(std) else 1.0)
            x[:, j] = v
            j += 1
        else:
            codes, uniques = pd.factorize(frame[col], sort=True)
            x[np.arange(len(frame)), j + codes] = 1.0
            j += len(uniques)
    return x


def _split_mask(n: int, test_fraction: float, seed: int, source: str) -> np.ndarray:
    """A seeded random test mask with round(test_fraction * n) rows (at least 1, at most n-1)."""
    if n < 2:
        raise DataError(
            f"only {n} complete row: too few to split off a test set; give more rows, or the "
            "test rows in a file of their own (data.options.test_path)",
            source=source,
            key="data.options.path",
        )
    n_test = min(n - 1, max(1, round(test_fraction * n)))
    mask = np.zeros(n, dtype=bool)
    mask[stream_rng(seed, "csv/split").permutation(n)[:n_test]] = True
    return mask


@register_dataset("csv")
def csv(
    *,
    seed: int,
    path: str,
    label: str | int = -1,
    header: bool = True,
    client_column: str | int | None = None,
    test_path: str | None = None,
    test_fraction: float = 0.2,
    standardize: bool = True,
    label_strip: bool = True,
    skiprows: int = 0,
    test_skiprows: int = 0,
) -> ArrayData:
    """A table from CSV (.csv, .csv.gz, any other non-Parquet name) or Parquet (.parquet).

    ``label``/``client_column``: column name or 0-based index (-1 = last). Rows with a missing
    value ('?' or empty; nothing else) are dropped, counted in ``dropped_rows`` and reported in
    a warning; blank lines are skipped. A column that is mostly numbers is numeric: a value in
    it that is not a finite number ('abc', 'inf', 'NaN', '1e400') is a DataError naming the
    file, column, row and line, as is a client whose rows all miss a value. Text columns are
    one-hot encoded (categories from train and test together, so both get the same columns);
    numeric columns are z-scored with training-split statistics if ``standardize``. Labels
    map to 0..K-1 in sorted order, text labels stripped of whitespace and a trailing '.' if
    ``label_strip`` (UCI Adult's test file). Without ``test_path``, a seeded random ``test_fraction`` of rows is the test set.
    ``header``/``skiprows``/``test_skiprows`` apply to CSV files only.
    """
    import pandas as pd

    _option(0.0 < test_fraction < 1.0, "test_fraction", f"must be in (0, 1), got {test_fraction}")
    for option, lines in (("skiprows", skiprows), ("test_skiprows", test_skiprows)):
        _option(lines >= 0, option, f"must be >= 0, got {lines}")
        # pandas makes a set of the line numbers to skip: 1e29 of them was killed for memory
        _option(lines <= MAX_SKIPROWS, option, f"must be at most {MAX_SKIPROWS}, got {lines}")
    tables = [_read_table(path, header, skiprows, "data.options.path", "skiprows")]
    if test_path is not None:
        test = _read_table(
            test_path, header, test_skiprows, "data.options.test_path", "test_skiprows"
        )
        tables.append(test)
    _check_columns(tables)
    label_col = _column(tables[0], label, "label", header)
    client_col = None
    if client_column is not None:
        client_col = _column(tables[0], client_column, "client_column", header)
        _option(client_col != label_col, "client_column", "must differ from the label column")
    _check_features(tables[0], label_col, client_col)
    frames, dropped = _clean(tables, client_col)
    frame = pd.concat(frames, ignore_index=True)
    if test_path is None:
        is_test = _split_mask(len(frame), test_fraction, seed, path)
    else:
        is_test = np.arange(len(frame)) >= len(frames[0])
    arrays = _table_arrays(frame, label_col, client_col, is_test, standardize, label_strip)
    return dataclasses.replace(arrays, dropped_rows=dropped)


def _table_arrays(
    frame: Any, label_col: Any, client_col: Any, is_test: np.ndarray, standardize: bool, strip: bool
) -> ArrayData:
    import pandas as pd

    y, num_classes = _encode_labels(frame[label_col], strip)
    features = frame.drop(columns=[c for c in (label_col, client_col) if c is not None])
    x = _encode_features(features, ~is_test, standardize)
    client = None
    if client_col is not None:
        client = pd.factorize(frame[client_col][~is_test], sort=True)[0].astype(np.int64)
    train = ~is_test
    return ArrayData(x[train], y[train], client, x[is_test], y[is_test], num_classes)
