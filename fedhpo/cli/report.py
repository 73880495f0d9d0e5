"""``fedhpo report STUDY`` / ``--compare A B ...``: write an offline HTML report folder."""

from __future__ import annotations

import argparse

from fedhpo.cli._common import console, path_arg
from fedhpo.cli._study_args import add_storage_arg, load_study
from fedhpo.errors import StudyError
from fedhpo.report import write_comparison, write_report


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write an HTML report of a study (or compare several) that opens offline",
    )
    p.add_argument("study", nargs="?", metavar="STUDY")
    p.add_argument(
        "--compare",
        nargs="+",
        metavar="STUDY",
        help="overlay the best-so-far curves of these studies instead",
    )
    p.add_argument(
        "--out",
        type=path_arg,
        metavar="DIR",
        help="output folder (default: reports/<study> or reports/compare-<a>-<b>...)",
    )
    add_storage_arg(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if bool(args.study) == bool(args.compare):
        raise StudyError("give one STUDY, or --compare STUDY_A STUDY_B ...", key="STUDY")
    if args.compare:
        twice = next((n for i, n in enumerate(args.compare) if n in args.compare[:i]), None)
        if twice is not None:
            raise StudyError(f"study {twice!r} is named twice; name each once", key="--compare")
        studies = [load_study(name, args.storage) for name in args.compare]
        index = write_comparison(studies, args.out)
    else:
        index = write_report(load_study(args.study, args.storage), args.out, args.storage)
    console.print(f"wrote {index}", markup=False, highlight=False, soft_wrap=True)
    return 0
