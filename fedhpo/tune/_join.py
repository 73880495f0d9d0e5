"""A worker joining a study by name (creating it from a space file if it is new) to run its
trials until the study's budget is used up across all of its workers."""

from __future__ import annotations

import dataclasses
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import optuna

from fedhpo.errors import StudyError
from fedhpo.space import SearchSpace
from fedhpo.store import Liveness, RetryPolicy, open_storage, sqlite_file
from fedhpo.store import records as rec
from fedhpo.store.budget import Budget, done, load_budget, save_budget
from fedhpo.store.lock import StudyLock
from fedhpo.tune._checks import check_runnable
from fedhpo.tune._objective import cached_dataset
from fedhpo.tune._runner import TuneOptions, create_or_resume, work
from fedhpo.tune._worker import OnTrial, WorkerReport, identity


@dataclass(frozen=True)
class Joined:
    """The study a worker joined: its space and budget as recorded on it."""

    space: SearchSpace
    budget: Budget
    opts: TuneOptions


def _exists(storage: str, study: str) -> bool:
    names = set(optuna.get_all_study_names(open_storage(storage, existing=True)))
    return study in names


def _no_budget(study: str) -> StudyError:
    return StudyError(
        f"study {study!r} has no trial budget; give --trials N or --timeout S", key="--trials"
    )


def _recorded_budget(storage: str, study: str) -> Budget | None:
    """The budget recorded on ``study``; None if it has none or does not exist yet. Only
    reads (:func:`stored_study`)."""
    found = stored_study(storage, study)
    return None if found is None else load_budget(found)


def stored_study(storage: str | optuna.storages.BaseStorage, study: str) -> optuna.Study | None:
    """``study`` if ``storage`` holds it, else None; only reads: a SQLite file that does not
    exist is not made (and holds no study). StudyError for a storage that cannot be opened."""
    try:
        handle = open_storage(storage, existing=True)
    except StudyError:
        if isinstance(storage, str) and _database_missing(storage):
            return None
        raise
    if study not in set(optuna.get_all_study_names(handle)):
        return None
    return optuna.load_study(study_name=study, storage=handle)


def _database_missing(storage: str) -> bool:
    """A SQLite URL whose file does not exist (False for a URL that names no file)."""
    try:
        path = sqlite_file(storage)
    except Exception:  # an unparsable URL: the caller raises open_storage's error about it
        return False
    return path is not None and not path.exists()


def _ensure_budget(opts: TuneOptions, trials: int | None, timeout: float | None) -> Budget:
    """The study's budget; a study without one gets ``trials`` more trials / ``timeout``."""
    with StudyLock(opts.storage, opts.study, opts.retry).held():
        study = optuna.load_study(study_name=opts.study, storage=open_storage(opts.storage))
        budget = load_budget(study)
        if budget is not None:
            return budget
        if trials is None and timeout is None:
            raise _no_budget(opts.study)
        existing = study.get_trials(deepcopy=False)
        total = None if trials is None else done(existing) + trials
        budget = Budget(trials=total, timeout=timeout)
        save_budget(study, budget)
        return budget


def join_study(
    study: str,
    storage: str,
    *,
    space: SearchSpace | None = None,
    trials: int | None = None,
    timeout: float | None = None,
    plugins: Sequence[str] = (),
    liveness: Liveness | None = None,
    retry: RetryPolicy | None = None,
) -> Joined:
    """Load the study (or create it from ``space``, with ``trials``/``timeout`` as its budget;
    a second worker creating it at the same moment finds it made) and its budget."""
    opts = TuneOptions(
        storage=storage,
        study=study,
        trials=trials or 0,
        timeout=timeout,
        plugins=tuple(plugins),
        liveness=liveness or Liveness(),
        retry=retry or RetryPolicy(),
    )
    if space is not None:
        check_runnable(space)  # registry names, validation data: before a study is written
        cached_dataset(space.config_for({}).data)  # and the data (a missing file, say)
        if trials is None and timeout is None and _recorded_budget(storage, study) is None:
            raise _no_budget(study)  # nothing to create a study with
        create_or_resume(space, opts)  # checks that an existing study has the same space
    elif not _exists(storage, study):
        raise StudyError(
            f"no study {study!r} in the storage; create it with `fedhpo tune --space FILE "
            f"--study {study} --create-only`, or give this worker --space FILE",
            key="--study",
        )
    loaded = optuna.load_study(study_name=study, storage=open_storage(storage))
    recorded = loaded.user_attrs.get(rec.SPACE)
    if recorded is None:
        raise StudyError(f"study {study!r} was not made by fedhpo (no search space recorded)")
    space = space or SearchSpace.from_dict(recorded)
    budget = _ensure_budget(opts, trials, timeout)
    check = rec.fidelity_check(loaded)  # the first rung `fedhpo tune` calibrated, if any
    if check is not None:
        opts = dataclasses.replace(opts, min_rounds=check.get("chosen"))
    return Joined(space, budget, opts)


def run_worker(joined: Joined, on_trial: OnTrial | None = None) -> WorkerReport:
    """Run trials until the study's budget is used; StudyError if all of this worker's failed."""
    # Build the data once before claiming a trial: a missing file is one clear error here.
    cached_dataset(joined.space.config_for({}).data)
    who = identity()
    worker = zlib.crc32(f"{who['host']}:{who['pid']}:{time.time()}".encode())
    report = work(joined.space, joined.opts, worker, on_trial)
    failed = report.all_failed()
    if failed is not None:
        raise failed
    return report
