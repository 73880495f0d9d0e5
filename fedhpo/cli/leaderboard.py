"""``fedhpo leaderboard STUDY``: complete trials ranked; running ones with their worker;
pruned and failed ones apart."""

from __future__ import annotations

import argparse

import pandas as pd

from fedhpo.cli._common import at_least, console
from fedhpo.cli._format import add_format_arg, leader_note, print_frame
from fedhpo.cli._study_args import add_storage_arg, load_study
from fedhpo.store import count_states, leaderboard, other_trials, running_trials


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("leaderboard", help="rank a study's trials")
    p.add_argument("study", metavar="STUDY")
    p.add_argument(
        "--top", type=at_least(1), default=10, metavar="K", help="show the best K (default 10)"
    )
    p.add_argument("--all", action="store_true", help="also list pruned and failed trials")
    add_storage_arg(p)
    add_format_arg(p)
    p.set_defaults(func=main)


#: Columns that count something or name a round: integers, empty where a row has none.
INTEGER_COLUMNS = ("rank", "trial", "front", "rounds", "ahead_at_round", "promoted_seeds")


def as_data(board: pd.DataFrame, others: pd.DataFrame | None = None) -> pd.DataFrame:
    """The leaderboard for ``--format csv|json``: with ``others`` (``--all``), the trials
    that did not complete follow the ranked ones, unranked, and every row has its ``reason``
    and ``worker``; counts and rounds are (nullable) integers, not floats."""
    frame = board
    if others is not None and not others.empty:
        detail = others[["trial", "reason", "worker"]]
        if not board.empty:
            frame = board.merge(detail, on="trial", how="left")
        rest = others[~others["trial"].isin(board["trial"])] if not board.empty else others
        frame = pd.concat([f for f in (frame, rest) if not f.empty], ignore_index=True)
    ints = {c: "Int64" for c in INTEGER_COLUMNS if c in frame}
    return frame.astype(ints)


def main(args: argparse.Namespace) -> int:
    study = load_study(args.study, args.storage)
    board = leaderboard(study, top=args.top)
    if args.format != "table":
        print_frame(as_data(board, other_trials(study) if args.all else None), args.format)
        return 0
    if board.empty:
        console.print(f"study {args.study!r} has no complete trial yet")
    else:
        title = f"Top {len(board)} trials of {args.study}"
        if "front" in board:
            on_front = len(study.best_trials)
            trials = "trial" if on_front == 1 else "trials"
            title = f"{title} by Pareto front ({on_front} {trials} on front 1, the Pareto front)"
        print_frame(board, "table", title=title)
        note = leader_note(board)
        if note:
            console.print(note, markup=False, highlight=False)
    running = running_trials(study)
    if not running.empty:
        print_frame(running, "table", title=f"Running now: {len(running)}")
    others = other_trials(study)
    if not others.empty:
        summary = count_states(others)
        if args.all:
            print_frame(others, "table", title=f"Not complete: {summary}")
        else:
            console.print(f"not complete: {summary} (--all lists them with their reasons)")
    return 0
