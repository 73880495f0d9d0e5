"""Arguments and output helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import shlex
import sys
from collections.abc import Callable, Iterator, Mapping

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fedhpo.config import ConfigOrigin, override_values
from fedhpo.errors import ConfigError, FedhpoError
from fedhpo.plugins import load_plugins
from fedhpo.space import SearchSpace, load_space

# Piped output (CI logs, `| less`) gets wide lines instead of rich's 80-column default.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum`` (argparse then says which flag, exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def positive(text: str) -> float:
    """An argparse type: a finite number > 0 (a budget, a timeout)."""
    value = _finite(text)
    if value is None or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def non_negative(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    value = _finite(text)
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def path_arg(text: str) -> str:
    """A file or folder path (an empty one, ``--out ""``, read as no option at all)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a file or folder, or leave it out")
    return text


def _finite(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def add_config_args(parser: argparse.ArgumentParser, what: str = "override a config value") -> None:
    """``--set key.path=value`` (repeatable; ``what`` it does) and ``--plugin MODULE``."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"{what}, e.g. --set client.lr=0.1 (repeatable)",
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


@contextlib.contextmanager
def set_located(args: argparse.Namespace) -> Iterator[None]:
    """Errors of the body about a key ``--set`` gave (the data or model checks of a base
    config, say) name ``--set`` as their source, as ``fedhpo run``'s do."""
    try:
        yield
    except FedhpoError as exc:
        origin = ConfigOrigin(None, frozenset(override_values(args.overrides)))
        raise origin.locate(exc) from None


def load_args_space(args: argparse.Namespace) -> SearchSpace:
    """``--space FILE`` with ``--base CONFIG`` and ``--set`` overrides on its base config."""
    space = load_space(args.space, base=args.base)
    if args.overrides:
        values = override_values(args.overrides)
        try:  # the base was valid: what is wrong now came from --set, and says so as run's do
            base = space.base.with_values(values)
        except ConfigError as exc:
            raise exc.located(source="--set") from None
        space = dataclasses.replace(space, base=base)
    return space


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
