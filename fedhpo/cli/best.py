"""``fedhpo best STUDY --out FILE``: export the best config as a full-fidelity run config."""

from __future__ import annotations

import argparse
import shlex
import warnings

from fedhpo.cli._common import (
    add_plugin_arg,
    at_least,
    console,
    load_args_plugins,
    path_arg,
    plugin_flags,
)
from fedhpo.cli._study_args import add_storage_arg, load_study
from fedhpo.config import RunConfig, dump_config
from fedhpo.errors import ConfigError
from fedhpo.sim.names import check_names
from fedhpo.store import best_config, export_best


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("best", help="export the best trial as a run config")
    p.add_argument("study", metavar="STUDY")
    p.add_argument(
        "--out", type=path_arg, metavar="FILE", help="write the YAML here (default: print it)"
    )
    p.add_argument(
        "--trial", type=at_least(0), metavar="N", help="export trial N instead of the best"
    )
    add_storage_arg(p)
    add_plugin_arg(p)
    p.set_defaults(func=main)


def _note_unregistered(config: RunConfig) -> None:
    """The file is written either way; say what ``fedhpo run`` will need."""
    try:
        check_names(config)
    except ConfigError as exc:
        warnings.warn(f"`{exc.key}`: {exc.message}; `fedhpo run` will need it", stacklevel=2)


def main(args: argparse.Namespace) -> int:
    load_args_plugins(args)
    study = load_study(args.study, args.storage)
    if args.out is None:
        config = best_config(study, args.trial, args.storage)
        print(dump_config(config), end="")
        _note_unregistered(config)
        return 0
    _note_unregistered(export_best(study, args.out, args.trial, args.storage, plugins=args.plugins))
    out = shlex.quote(args.out)
    console.print(f"wrote {out}; run it with: fedhpo run {out}{plugin_flags(args)}", markup=False)
    return 0
