"""A study's budget (a trial count and/or a timeout) that all its workers share, the rule by
which a killed trial's retry takes over its place in that budget, and the session lock: one
``fedhpo tune`` session sets a study's budget at a time."""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import optuna
import sqlalchemy
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from fedhpo.errors import StudyError
from fedhpo.store import records as rec

#: A trial killed this many times in a row is not queued again (it may be what kills workers).
MAX_RETRIES = 3


@dataclass(frozen=True)
class Budget:
    """``trials``: how many trials the study holds when the search is done (a retried trial
    and its retry count once); ``timeout``: no trial starts later than ``timeout`` seconds
    after ``started`` (set when the first worker begins); ``steps``: no trial starts once the
    study's trials took this many client steps in all; ``owner``: the ``fedhpo tune`` session
    that set it (``session``, ``host``, ``pid``; None for a budget made for workers)."""

    trials: int | None = None
    timeout: float | None = None
    started: float | None = None
    steps: int | None = None
    owner: dict[str, Any] | None = None

    @property
    def deadline(self) -> float | None:
        """Epoch seconds after which no trial starts (None: no timeout or not started)."""
        if self.timeout is None or self.started is None:
            return None
        return self.started + self.timeout

    def expired(self, now: float | None = None) -> bool:
        """True once the deadline has passed."""
        deadline = self.deadline
        return deadline is not None and (time.time() if now is None else now) >= deadline

    def spent(self, trials: list[FrozenTrial]) -> bool:
        """True once the trials' client steps reach ``steps``."""
        return self.steps is not None and sum(rec.trial_steps(t) for t in trials) >= self.steps

    def to_dict(self) -> dict[str, Any]:
        return {
            "trials": self.trials,
            "timeout": self.timeout,
            "started": self.started,
            "steps": self.steps,
            "owner": self.owner,
        }


def load_budget(study: optuna.Study) -> Budget | None:
    """The budget recorded on the study (None for studies made before budgets existed)."""
    data = study.user_attrs.get(rec.BUDGET)
    if not isinstance(data, dict):
        return None
    owner = data.get("owner")
    return Budget(
        data.get("trials"),
        data.get("timeout"),
        data.get("started"),
        data.get("steps"),
        owner if isinstance(owner, dict) else None,
    )


def save_budget(study: optuna.Study, budget: Budget) -> None:
    study.set_user_attr(rec.BUDGET, budget.to_dict())


def retried(trials: Iterable[FrozenTrial]) -> set[int]:
    """Numbers of the trials that were queued again after their worker died or was stopped."""
    out: set[int] = set()
    for t in trials:
        out.update(t.system_attrs.get("retry_history", []))
    return out


def used(trials: list[FrozenTrial]) -> int:
    """How much of a trial budget ``trials`` use: a retried trial's place passes to its retry."""
    return len(trials) - len(retried(trials))


def done(trials: list[FrozenTrial]) -> int:
    """How much of a trial budget ``trials`` used already: :func:`used` but the unfinished
    ones, which a new session counts among its own: the queued (retries of stopped trials, the
    base config) and the running (a dead session's trial is failed and queued again later)."""
    return used(trials) - sum(not t.state.is_finished() for t in trials)


def running_elsewhere(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """RUNNING trials that a fedhpo worker owns (others, e.g. foreign ones, are not waited on)."""
    return [t for t in trials if t.state == TrialState.RUNNING and rec.WORKER in t.user_attrs]


class RetryTrial(optuna.storages.RetryHeartbeatStaleTrialCallback):
    """Queue a killed or stopped trial's parameters again (Optuna's retry callback), keeping
    only where the trial came from and whether it is a run of the fidelity check: its partial
    outputs and its worker are not inherited."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(max_retry=MAX_RETRIES)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trial = copy.copy(trial)
        trial.user_attrs = {
            k: v for k, v in trial.user_attrs.items() if k in (rec.ORIGIN, rec.CALIBRATION)
        }
        super().__call__(study, trial)


class SessionLock:
    """Held by a ``fedhpo tune`` session while it runs, so that a second session of the study
    is refused instead of replacing the budget the first one's workers share; released when
    the session ends or its process dies (a crashed session frees the study at once).

    SQLite: ``flock`` on ``<db file>.session-<study digest>.lock``; PostgreSQL: a session
    advisory lock keyed by the study name, on a connection of its own (the server releases it
    if the process dies or the connection drops). Other storages are not checked.
    """

    def __init__(self, url: str | optuna.storages.BaseStorage, study: str) -> None:
        digest = hashlib.sha256(f"fedhpo-session:{study}".encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)
        self.path: Path | None = None
        self.engine: sqlalchemy.Engine | None = None
        self._file: IO[str] | None = None
        self._conn: sqlalchemy.Connection | None = None
        if not isinstance(url, str):
            return  # a storage object lives in one process: nothing to share
        from fedhpo.store._storage import sqlite_file  # which imports this module

        db = sqlite_file(url)
        if db is not None:
            self.path = Path(f"{db}.session-{digest[:6].hex()}.lock")
        elif make_url(url).get_backend_name() == "postgresql":
            self.engine = sqlalchemy.create_engine(url, poolclass=NullPool)

    def acquire(self) -> bool:
        """Take the lock if no other session holds it (never waits); True if taken."""
        if self.path is not None:
            try:
                handle = self.path.open("a")
            except OSError as exc:
                raise StudyError(
                    f"cannot open the session lock {str(self.path)!r}: {exc.strerror}",
                    key="--storage",
                ) from None
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                return False
            self._file = handle
        elif self.engine is not None:
            conn = self.engine.connect()
            query = sqlalchemy.text("SELECT pg_try_advisory_lock(:k)")
            taken = bool(conn.execute(query, {"k": self.key}).scalar())
            conn.commit()
            if not taken:
                conn.close()
                return False
            self._conn = conn
        return True

    def release(self) -> None:
        """Let another session take the study (closing the file or connection releases it)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
