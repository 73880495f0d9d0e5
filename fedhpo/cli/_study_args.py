"""``--storage``, study lookup and worker liveness flags shared by the study commands."""

from __future__ import annotations

import argparse

import optuna

from fedhpo.cli._common import at_least, non_negative
from fedhpo.errors import StudyError
from fedhpo.store import DEFAULT_STORAGE, Liveness, RetryPolicy, mask_url, open_storage


def add_storage_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        metavar="URL",
        help=f"study database (default: {DEFAULT_STORAGE}; or postgresql://user@host/db)",
    )


def load_study(name: str, storage_url: str) -> optuna.Study:
    """Load a study by name, or say which studies exist."""
    storage = open_storage(storage_url, existing=True)
    names = list(optuna.get_all_study_names(storage))
    if name not in names:
        known = ", ".join(names) if names else "none yet; run `fedhpo tune` first"
        raise StudyError(
            f"no study {name!r} in {mask_url(storage_url)}; studies: {known}", key="STUDY"
        )
    return optuna.load_study(study_name=name, storage=storage)


def add_worker_args(parser: argparse.ArgumentParser) -> None:
    """Heartbeat and database-retry settings of processes that run trials."""
    d = Liveness()
    parser.add_argument(
        "--heartbeat",
        type=at_least(1),
        default=d.interval,
        metavar="SECONDS",
        help=f"heartbeat interval of a running trial (default {d.interval})",
    )
    parser.add_argument(
        "--grace",
        type=at_least(1),
        default=d.grace,
        metavar="SECONDS",
        help=f"a trial whose heartbeat is older is failed and queued again (default {d.grace})",
    )
    parser.add_argument(
        "--db-retry",
        type=non_negative,
        default=RetryPolicy().total,
        metavar="SECONDS",
        help="keep retrying an unreachable database this long (default %(default)s)",
    )


def liveness_from(args: argparse.Namespace) -> Liveness:
    return Liveness(interval=args.heartbeat, grace=args.grace)


def retry_from(args: argparse.Namespace) -> RetryPolicy:
    return RetryPolicy(total=args.db_retry)
