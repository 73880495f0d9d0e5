"""``fedhpo studies``: the studies in a database with trial counts and best values."""

from __future__ import annotations

import argparse

from fedhpo.cli._common import console
from fedhpo.cli._format import add_format_arg, print_frame
from fedhpo.cli._study_args import add_storage_arg
from fedhpo.store import mask_url, open_storage, study_summaries


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("studies", help="list studies with trial counts and best values")
    add_storage_arg(p)
    add_format_arg(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    frame = study_summaries(open_storage(args.storage, existing=True))
    if frame.empty and args.format == "table":
        console.print(f"no studies in {mask_url(args.storage)}")
        return 0
    print_frame(frame, args.format)
    return 0
