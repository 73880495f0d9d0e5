"""The worker loop: claim the next trial under the study lock, run it with a heartbeat, store
the result; until the study's budget is used up across all of its workers."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import math
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from fedhpo.errors import StudyError
from fedhpo.store import records as rec
from fedhpo.store.budget import (
    Budget,
    RetryTrial,
    load_budget,
    retried,
    running_elsewhere,
    save_budget,
    used,
)
from fedhpo.store.lock import StudyLock
from fedhpo.store.retry import first_line, is_transient, warn
from fedhpo.tune._signals import Heartbeat, Stopper

#: ``on_trial(study, trial)`` after each trial this worker finished.
OnTrial = Callable[[optuna.Study, FrozenTrial], None]

#: ``gate(study, trials) -> wait?``, asked under the study lock before each claim: True
#: holds this worker back for now (the fidelity check waits for its runs, ``_runner``).
Gate = Callable[[optuna.Study, list[FrozenTrial]], bool]


def identity() -> dict[str, Any]:
    """Who runs a trial: kept on it as the ``worker`` user attribute."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


@dataclass
class WorkerReport:
    """What one worker did: the trials it ran and how each ended."""

    states: dict[int, str] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    interrupted: str | None = None  # the signal that stopped the worker
    requeued: list[int] = field(default_factory=list)  # trials it stopped and queued again

    def all_failed(self) -> StudyError | None:
        """The error to report when every trial of this worker failed (None otherwise)."""
        return all_failed_error(self.states, self.errors)


def all_failed_error(states: dict[int, str], errors: dict[int, str]) -> StudyError | None:
    """A StudyError naming the first failure if every one of ``states`` is ``fail``."""
    if not states or any(s != "fail" for s in states.values()):
        return None
    first = min(states)
    reason = errors.get(first, "no reason recorded")
    return StudyError(
        f"all {len(states)} trial(s) failed; the first (trial {first}) failed with: {reason}"
    )


_WAIT = object()  # no trial to claim now, but others' trials may still die and come back


class Worker:
    """Runs trials of ``study`` until its budget is used: the trial count is reached with no
    trial left queued or running elsewhere, or the timeout has passed. A trial killed with its
    worker is failed once its heartbeat is stale and queued again (see ``RetryTrial``)."""

    def __init__(
        self,
        study: optuna.Study,
        lock: StudyLock,
        objective: Callable[[optuna.Trial], Any],
        on_trial: OnTrial | None = None,
        gate: Gate | None = None,
        batch: int = 1,
        stopper: Stopper | None = None,
    ) -> None:
        self.study = study
        self.lock = lock
        self.objective = objective
        self.on_trial = on_trial
        self.gate = gate
        self.batch = batch
        """Queued fidelity-check trials one claim may take and run in one batched pass
        (``objective.run_many``, when the objective has it)."""
        self.storage = study._storage
        #: Seconds between looks while only other workers' trials are left: one of them may
        #: still die and come back as a retry, or finish.
        self.poll = 1.0
        self._reaped = -math.inf  # when this worker last looked for stale trials
        self.report = WorkerReport()
        self.stopper = stopper or Stopper()
        """The stop signals' handling (a job process of ``fedhpo tune`` brings its own)."""

    def run(self) -> WorkerReport:
        """The loop; SIGINT/SIGTERM end it after failing the current trial cleanly."""
        stopper = self.stopper
        # This loop is the study's optimize loop: Study.stop() (GridSampler calls it when the
        # grid is used up) then ends this worker instead of raising.
        self.study._thread_local.in_optimize_loop = True
        try:
            with stopper.installed():
                while not stopper.requested and not self.study._stop_flag:
                    claimed = self._claim()
                    if claimed is None:
                        break
                    if stopper.requested and claimed is not _WAIT:  # stopped during the claim
                        for trial in claimed if isinstance(claimed, list) else [claimed]:
                            self._interrupted(trial, stopper)  # it never ran: queued again
                        break
                    if claimed is _WAIT:
                        stopper.wait(self.poll)
                        continue
                    if isinstance(claimed, list):
                        self._run_many(claimed, stopper)
                    else:
                        self._run(claimed, stopper)
        except Exception as exc:
            if not is_transient(exc):
                raise
            if stopper.requested:  # asked to stop while waiting for the database: stop
                warn(
                    f"stopped by {stopper.requested} while the database was unreachable "
                    f"({first_line(exc)}); a trial this worker was running is failed and "
                    "retried once its heartbeat is stale"
                )
                self.report.interrupted = stopper.requested
                return self.report
            raise StudyError(
                f"the database stayed unreachable longer than the retries ({first_line(exc)}); "
                "a trial this worker was running is failed and retried once its heartbeat is "
                "stale; start the worker again when the database is back (--db-retry SECONDS "
                "waits longer)"
            ) from None
        finally:
            self.study._thread_local.in_optimize_loop = False
            self.study._stop_flag = False
        self.report.interrupted = stopper.requested
        return self.report

    def _claim(self) -> Any:
        """Under the lock: fail stale trials, check the budget, take the next trial. A stop
        signal cuts none of it (a stale trial failed but not queued again would be lost): it
        only keeps a trial from being taken, or has the one taken queued again after."""
        with self.lock.held(), self.stopper.calm():
            if time.monotonic() - self._reaped >= self.poll:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(self.study)
                self._reaped = time.monotonic()
            if self.stopper.requested:
                return None
            budget = load_budget(self.study) or Budget()
            if budget.timeout is not None and budget.started is None:
                budget = dataclasses.replace(budget, started=time.time())  # the first worker
                save_budget(self.study, budget)
            if budget.expired():
                return None
            trials = self.study.get_trials(deepcopy=False)
            if budget.spent(trials):
                return None
            queued = any(t.state == TrialState.WAITING for t in trials)
            if not queued and budget.trials is not None and used(trials) >= budget.trials:
                return _WAIT if running_elsewhere(trials) else None
            if self.gate is not None and self.gate(self.study, trials):
                return _WAIT
            trial = self._ask()
            if not trial.user_attrs.get(rec.CALIBRATION) or not hasattr(self.objective, "run_many"):
                return trial
            # asks take queued trials in number order: only as many as are check runs in a row
            queue = sorted(
                (t for t in trials if t.state == TrialState.WAITING and t.number != trial.number),
                key=lambda t: t.number,
            )
            more = list(itertools.takewhile(lambda t: t.user_attrs.get(rec.CALIBRATION), queue))
            return [trial] + [self._ask() for _ in more[: self.batch - 1]]

    def _ask(self) -> optuna.Trial:
        trial = self.study.ask()
        trial.set_user_attr(rec.WORKER, identity())
        if getattr(self.storage, "get_heartbeat_interval", lambda: None)() is not None:
            self.storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
        return trial

    def _run_many(self, trials: list[optuna.Trial], stopper: Stopper) -> None:
        """Claimed fidelity-check trials in one batched pass, each told on its own."""
        if len(trials) == 1:
            self._run(trials[0], stopper)
            return
        try:
            with contextlib.ExitStack() as beats, stopper.trial():
                for trial in trials:
                    beats.enter_context(Heartbeat(self.storage, trial._trial_id))
                outcomes = self.objective.run_many(trials)  # type: ignore[attr-defined]
        except KeyboardInterrupt:
            with stopper.shielded():  # every one queued again before another signal stops us
                for trial in trials:
                    self._interrupted(trial, stopper)
            return
        with stopper.shielded():
            self._tell_many(trials, outcomes, stopper)

    def _tell_many(self, trials: list[optuna.Trial], outcomes: list[Any], stopper: Stopper) -> None:
        for trial, outcome in zip(trials, outcomes, strict=True):
            if isinstance(outcome, KeyboardInterrupt):
                self._interrupted(trial, stopper)
            elif isinstance(outcome, optuna.TrialPruned):
                self._tell(trial, TrialState.PRUNED, None)
            elif isinstance(outcome, BaseException):
                if is_transient(outcome):
                    raise outcome
                if self._failed_elsewhere(trial):
                    continue
                reason = self._reason(trial) or f"error: {type(outcome).__name__}: {outcome}"
                self.report.errors[trial.number] = reason
                warn(f"trial {trial.number} failed: {reason}")
                self._tell(trial, TrialState.FAIL, None)
            else:
                self._tell(trial, TrialState.COMPLETE, outcome)

    def _run(self, trial: optuna.Trial, stopper: Stopper) -> None:
        state, values = TrialState.FAIL, None
        try:
            with Heartbeat(self.storage, trial._trial_id), stopper.trial():
                values = self.objective(trial)
            state = TrialState.COMPLETE
        except optuna.TrialPruned:
            state = TrialState.PRUNED
        except KeyboardInterrupt:
            self._interrupted(trial, stopper)
            return
        except Exception as exc:
            if is_transient(exc):  # the database stayed away longer than the retries
                raise
            if self._failed_elsewhere(trial):  # e.g. its report: UpdateFinishedTrialError
                return
            reason = self._reason(trial) or f"error: {type(exc).__name__}: {exc}"
            self.report.errors[trial.number] = reason
            warn(f"trial {trial.number} failed: {reason}")
        with stopper.shielded():  # a finished trial is told before a signal stops us
            self._tell(trial, state, values)

    def _reason(self, trial: optuna.Trial) -> str | None:
        reason = self.storage.get_trial_user_attrs(trial._trial_id).get(rec.STATUS_REASON)
        return None if reason is None else str(reason)

    def _failed_elsewhere(self, trial: optuna.Trial) -> bool:
        """Whether another worker failed ``trial`` meanwhile (and queued it again): its
        heartbeat looked stale to it, after a long pause of this worker or a database outage
        past the grace period. Says so when it did: the result here is to be dropped."""
        if not self.storage.get_trial(trial._trial_id).state.is_finished():
            return False
        warn(
            f"trial {trial.number} was failed meanwhile by another worker (its heartbeat "
            "was older than the grace period); its result is dropped and it runs again"
        )
        return True

    def _tell(self, trial: optuna.Trial, state: TrialState, values: Any) -> None:
        if self._failed_elsewhere(trial):
            return
        try:
            frozen = self.study.tell(trial, values if state == TrialState.COMPLETE else None, state)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError):
            # failed by another worker between the look above and the tell: ValueError
            # ("Cannot tell a FAIL trial") when Optuna saw it, else the storage's own error
            if self._failed_elsewhere(trial):
                return
            raise
        self.report.states[trial.number] = frozen.state.name.lower()
        if self.on_trial is not None:
            self.on_trial(self.study, frozen)

    def _interrupted(self, trial: optuna.Trial, stopper: Stopper) -> None:
        """Fail the trial and queue its parameters again, with no signal between the two
        (another Ctrl-C then raises once the trial is queued)."""
        with stopper.shielded():
            if self._failed_elsewhere(trial):
                return  # failed and queued again by the worker that found it stale
            who = identity()
            name = stopper.requested or "SIGINT"
            reason = f"interrupted by {name} (worker {who['host']}:{who['pid']}); queued again"
            trial.set_user_attr(rec.STATUS_REASON, reason)
            self.study.tell(trial, state=TrialState.FAIL)
            RetryTrial()(self.study, copy.deepcopy(self.storage.get_trial(trial._trial_id)))
            self.report.requeued.append(trial.number)
            warn(f"trial {trial.number} {reason}")


def budget_left(study: optuna.Study) -> str | None:
    """Why the study's budget is not used up yet (None if it is): for final checks. A spent
    budget or a passed timeout is used up whatever trials are left unfinished."""
    budget = load_budget(study) or Budget()
    trials = study.get_trials(deepcopy=False)
    if budget.expired(time.time()) or budget.spent(trials):
        return None
    running = [t.number for t in trials if t.state == TrialState.RUNNING]
    queued = [t.number for t in trials if t.state == TrialState.WAITING]
    if running or queued:
        parts = [f"trial(s) {running} still running"] if running else []
        return ", ".join(parts + ([f"trial(s) {queued} queued"] if queued else []))
    if budget.trials is not None and used(trials) < budget.trials:
        return f"{used(trials)} of {budget.trials} trials done"
    return None


def reap(study: optuna.Study, lock: StudyLock, who: dict[str, Any], why: str) -> list[int]:
    """Fail the RUNNING trials of the dead worker ``who`` (its ``identity()``) with the reason
    ``why`` and queue them again, under the study lock; their numbers. For the parent of a job
    process that died: it knows at once, where other workers wait for the heartbeat to go
    stale (a trial another worker failed meanwhile is left to it)."""
    storage = study._storage
    out = []
    with lock.held():
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.user_attrs.get(rec.WORKER) != who:
                continue
            try:
                storage.set_trial_user_attr(t._trial_id, rec.STATUS_REASON, why)
                if not storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            RetryTrial()(study, copy.deepcopy(storage.get_trial(t._trial_id)))
            out.append(t.number)
    return out


def session_outcome(study: optuna.Study, before: set[int]) -> StudyError | None:
    """All-failed check over the trials finished since ``before`` (retried ones excepted)."""
    trials = study.get_trials(deepcopy=False)
    skip = before | retried(trials)
    mine = [t for t in trials if t.state.is_finished() and t.number not in skip]
    states = {t.number: t.state.name.lower() for t in mine}
    errors = {t.number: str(t.user_attrs.get(rec.STATUS_REASON, "")) for t in mine}
    return all_failed_error(states, errors)
