"""A study's budget (a trial count and/or a timeout) that all its workers share, and the rule
by which a killed trial's retry takes over its place in that budget."""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from fedhpo.store import records as rec

#: A trial killed this many times in a row is not queued again (it may be what kills workers).
MAX_RETRIES = 3


@dataclass(frozen=True)
class Budget:
    """``trials``: how many trials the study holds when the search is done (a retried trial
    and its retry count once); ``timeout``: no trial starts later than ``timeout`` seconds
    after ``started`` (set when the first worker begins); ``steps``: no trial starts once the
    study's trials took this many client steps in all."""

    trials: int | None = None
    timeout: float | None = None
    started: float | None = None
    steps: int | None = None

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
        }


def load_budget(study: optuna.Study) -> Budget | None:
    """The budget recorded on the study (None for studies made before budgets existed)."""
    data = study.user_attrs.get(rec.BUDGET)
    if not isinstance(data, dict):
        return None
    return Budget(data.get("trials"), data.get("timeout"), data.get("started"), data.get("steps"))


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
    """How much of a trial budget ``trials`` used already: :func:`used` but the queued ones
    (retries of stopped trials, the base config), which a new session counts among its own."""
    return used(trials) - sum(t.state == TrialState.WAITING for t in trials)


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
