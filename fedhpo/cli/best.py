"""``fedhpo best STUDY --out FILE``: export the best config as a full-fidelity run config."""

from __future__ import annotations

import argparse

from fedhpo.cli._common import console
from fedhpo.cli._study_args import add_storage_arg, load_study
from fedhpo.config import dump_config
from fedhpo.store import best_config, export_best


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("best", help="export the best trial as a run config")
    p.add_argument("study", metavar="STUDY")
    p.add_argument("--out", metavar="FILE", help="write the YAML here (default: print it)")
    p.add_argument("--trial", type=int, metavar="N", help="export trial N instead of the best")
    add_storage_arg(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    study = load_study(args.study, args.storage)
    if args.out is None:
        print(dump_config(best_config(study, args.trial)), end="")
        return 0
    export_best(study, args.out, args.trial)
    console.print(f"wrote {args.out}; run it with: fedhpo run {args.out}")
    return 0
