"""The ``fedhpo`` command: dispatch to one small module per subcommand."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from types import FrameType

import optuna

from fedhpo import __version__
from fedhpo.cli import bench, best, leaderboard, report, space, studies, tune, worker
from fedhpo.cli import run as run_cmd
from fedhpo.errors import FedhpoError, show_note
from fedhpo.sim.threads import set_threads

COMMANDS = [run_cmd, tune, worker, studies, leaderboard, best, space, report, bench]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedhpo",
        description="Hyperparameter tuning for federated learning.",
    )
    parser.add_argument("--version", action="version", version=f"fedhpo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def _threads() -> int:
    """Threads per process: ``FEDHPO_THREADS``, default 1."""
    raw = os.environ.get("FEDHPO_THREADS", "1")
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise FedhpoError(
            f"must be a positive integer, the threads of each fedhpo process (1, the default, "
            f"is fastest for small models), got {raw!r}; unset it or give e.g. 1",
            key="FEDHPO_THREADS",
        )
    return n


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (``kill PID``) stops a command as Ctrl-C does: its cleanup runs (a pool's
    processes are stopped, trials queued again), where the default handler ended the process
    at once (exit 143) and left its child processes running. Commands that handle the signal
    themselves (a worker, tune's jobs) set their own handler and put this one back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for bad input, 130 for Ctrl-C or SIGTERM)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # fedhpo prints its own progress
    warnings.showwarning = show_note
    try:
        with _sigterm_as_ctrl_c():
            # Small models on CPU: one thread per process is several times faster than many.
            set_threads(_threads())
            return int(args.func(args) or 0)
    except FedhpoError as exc:
        print(f"fedhpo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fedhpo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
