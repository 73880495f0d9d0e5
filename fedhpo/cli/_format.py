"""Print tables of data as a rich table, CSV or JSON (``--format table|csv|json``)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import pandas as pd
from rich.table import Table

from fedhpo.cli._common import console

FORMATS = ("table", "csv", "json")


def add_format_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def print_frame(frame: pd.DataFrame, fmt: str = "table", title: str | None = None) -> None:
    """Print a DataFrame in the chosen format (tables go through rich, data raw to stdout)."""
    if fmt == "csv":
        frame.to_csv(sys.stdout, index=False)
    elif fmt == "json":
        records = json.loads(frame.to_json(orient="records"))
        print(json.dumps(records, indent=2))
    else:
        table = Table(title=title, title_justify="left", header_style="bold")
        for column in frame.columns:
            table.add_column(str(column), overflow="fold")
        for row in frame.itertuples(index=False):
            table.add_row(*(_cell(v) for v in row))
        console.print(table)


def leader_note(board: pd.DataFrame) -> str | None:
    """What to know about the leaderboard's first trial when it did not run to the end."""
    if board.empty or "ahead_at_round" not in board:
        return None
    first = board.iloc[0]
    round_ = first["ahead_at_round"]
    if round_ is None or (isinstance(round_, float) and math.isnan(round_)):
        return None
    return (
        f"trial {first['trial']} leads though it did not finish: the budget stopped it at round "
        f"{int(round_)}, where it was ahead of the best complete trial; `fedhpo best` exports "
        "it and `fedhpo run` gives its full-fidelity score"
    )
