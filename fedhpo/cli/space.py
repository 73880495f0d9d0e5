"""``fedhpo space check FILE``: validate a search-space file and print its parameters."""

from __future__ import annotations

import argparse

import pandas as pd

from fedhpo.cli._common import add_plugin_arg, console, load_args_plugins
from fedhpo.cli._format import add_format_arg, print_frame
from fedhpo.errors import DataMissingError
from fedhpo.space import SearchSpace, describe, load_space
from fedhpo.tune import cached_dataset, check_runnable, run_costs


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("space", help="work with search-space files")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate a space file and list its parameters")
    check.add_argument("file", metavar="FILE")
    check.add_argument("--base", metavar="CONFIG", help="base run config (overrides the file's)")
    add_format_arg(check)
    add_plugin_arg(check)
    check.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    load_args_plugins(args)
    space = load_space(args.file, base=args.base)
    check_runnable(space)  # names, options, base data options, validation rows, builds
    frame = pd.DataFrame(describe(space))
    if args.format != "table":
        print_frame(frame, args.format)
        return 0
    objectives = ", ".join(f"{o.metric} ({o.direction})" for o in space.objectives)
    console.print(f"[bold]{args.file}[/bold]: valid ({space.format} format)")
    t = space.tuner
    spend = [
        f"{t.trials} trials" if t.trials else "",
        f"budget {t.budget:g} full runs" if t.budget else "",
    ]
    console.print(
        f"objective: {objectives}; sampler {t.sampler}, pruner {t.pruner}, "
        f"{', '.join(s for s in spend if s)}; promote top {t.promote} with {t.seeds} seeds"
    )
    console.print(f"cost of a full run, {_costs(space)}", markup=False, highlight=False)
    print_frame(frame, "table", title=f"{len(frame)} parameters")
    return 0


def _costs(space: SearchSpace) -> str:
    """What a full run of the space's configs costs; the file is valid without its data, so
    data whose files are not on this machine is said, not raised (``check_runnable`` raised
    every other data error)."""
    try:
        dataset = cached_dataset(space.base.data)
    except DataMissingError as exc:
        return f"not computed: the base config's data cannot be built here ({exc})"
    costs = run_costs(space, dataset)
    if costs is None:
        return "not computed: no config drawn from the space could be built"
    what = costs.describe() if costs.varies else "1 for every config drawn"
    return f"in runs of the base config (the unit of a budget): {what}"
