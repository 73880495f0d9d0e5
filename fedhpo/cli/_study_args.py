"""``--storage`` and study lookup shared by the commands that read studies."""

from __future__ import annotations

import argparse

import optuna

from fedhpo.errors import StudyError
from fedhpo.store import DEFAULT_STORAGE, mask_url, open_storage


def add_storage_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        metavar="URL",
        help=f"study database (default: {DEFAULT_STORAGE}; or postgresql://user@host/db)",
    )


def load_study(name: str, storage_url: str) -> optuna.Study:
    """Load a study by name, or say which studies exist."""
    storage = open_storage(storage_url)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if name not in names:
        known = ", ".join(names) if names else "none yet; run `fedhpo tune` first"
        raise StudyError(
            f"no study {name!r} in {mask_url(storage_url)}; studies: {known}", key="STUDY"
        )
    return optuna.load_study(study_name=name, storage=storage)
