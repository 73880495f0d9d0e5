"""Arguments and output helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Mapping

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fedhpo.plugins import load_plugins

# Piped output (CI logs, `| less`) gets wide lines instead of rich's 80-column default.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """``--set key.path=value`` (repeatable) and ``--plugin MODULE`` (repeatable)."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set client.lr=0.1 (repeatable)",
    )
    add_plugin_arg(parser)


def add_plugin_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plugin",
        dest="plugins",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first, to register your own datasets, models or server "
        "optimizers (repeatable); nothing else is ever imported",
    )


def load_args_plugins(args: argparse.Namespace) -> None:
    load_plugins(getattr(args, "plugins", []))


def plugin_flags(args: argparse.Namespace) -> str:
    """`` --plugin A --plugin B`` as given, for the next commands a command suggests."""
    return "".join(f" --plugin {shlex.quote(name)}" for name in getattr(args, "plugins", []))


class RoundProgress:
    """A rich progress bar over rounds, fed by the engine's ``on_round_end`` callback."""

    def __init__(self, rounds: int, label: str = "rounds") -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task(label, total=rounds, info="")

    def __enter__(self) -> RoundProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, round_: int, metrics: Mapping[str, float]) -> bool:
        info = f"train loss {metrics['train_loss']:.4f}  val acc {metrics['val_accuracy']:.4f}"
        self.progress.update(self.task, completed=round_, info=info)
        return False
