"""A worker's liveness: the heartbeat thread of its running trial, and SIGINT/SIGTERM handling
that stops a trial at a safe point instead of killing the process mid-write: a worker's own,
and how ``fedhpo tune`` passes the signals on to its job processes."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from multiprocessing import resource_tracker
from multiprocessing.process import BaseProcess
from types import FrameType

import optuna

from fedhpo.store import retry
from fedhpo.store.retry import warn

#: The signals that ask a worker, or ``fedhpo tune`` and its jobs, to stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopper:
    """SIGINT and SIGTERM ask the worker to stop.

    During a trial's run the first signal raises ``KeyboardInterrupt`` (the engine ends the run
    after the current client; the worker then fails the trial cleanly and queues it again);
    between trials it only sets :attr:`requested`, so no database write is cut in half. A
    second signal raises at once (the way out of a stuck wait) when ``repeats_raise``, except
    inside :meth:`shielded` (failing a stopped trial and queueing it again), where it raises at
    the end of the block, and inside :meth:`calm` (a claim), where it never raises. A job
    process of ``fedhpo tune`` has ``repeats_raise=False``: it gets a terminal's Ctrl-C and its
    parent's too, and each repeat is the same stop.
    """

    def __init__(self, repeats_raise: bool = True) -> None:
        self.requested: str | None = None
        self.in_trial = False
        self.repeats_raise = repeats_raise
        self._wake = threading.Event()
        self._shields = 0  # nested shielded() blocks
        self._calm = 0  # nested calm() blocks
        self._deferred = False
        self._installed = False

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        again = self.requested is not None
        self.requested = self.requested or signal.Signals(signum).name
        self._wake.set()
        if again or not self.in_trial:  # a wait for the database ends: the worker is to stop
            retry.GIVE_UP.set()  # (in a trial the first signal leaves the writes that stop
            # it cleanly their retries; a second one is the way out of those too)
        if self._calm or not ((self.in_trial and not again) or (again and self.repeats_raise)):
            return
        if self._shields:
            self._deferred = True
        else:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """No signal interrupts the block (writes that belong together); one that came
        during it and would have raised raises when the outermost such block is done."""
        self._shields += 1
        try:
            yield
        finally:
            self._shields -= 1
        if self._deferred and not self._shields:
            self._deferred = False
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def calm(self) -> Iterator[None]:
        """No signal raises during the block (a claim: failing stale trials and queueing them
        again, taking a trial); the caller looks at :attr:`requested` after it."""
        self._calm += 1
        try:
            yield
        finally:
            self._calm -= 1

    def install(self) -> None:
        """Handle the signals from now on, in the main thread (a job process, for its life)."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)
        retry.GIVE_UP.clear()
        self._installed = True

    @contextlib.contextmanager
    def installed(self) -> Iterator[Stopper]:
        """Handle the signals for the duration of the block (main thread only; nothing to do
        if they are handled already)."""
        if self._installed or threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
        self.install()
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._installed = False
            retry.GIVE_UP.clear()

    @contextlib.contextmanager
    def trial(self) -> Iterator[None]:
        """Signals interrupt the block (a trial's run)."""
        if self.requested:
            raise KeyboardInterrupt
        self.in_trial = True
        try:
            yield
        finally:
            self.in_trial = False

    def wait(self, seconds: float) -> None:
        """Sleep up to ``seconds``; a stop request ends the wait early."""
        self._wake.wait(seconds)


class Forwarder:
    """A parent's stop signals, passed on to its job processes while they run.

    Every SIGINT or SIGTERM the parent gets goes to each job that is still running (a job
    treats repeats as the same stop: a terminal's Ctrl-C reaches it directly too); the parent
    itself only records the first in :attr:`requested`, waits for its jobs to fail and queue
    their trials again, and then ends as interrupted. Jobs start with the signals blocked
    (:meth:`start`) and let them in once they handle them (:func:`job_signals`), so a signal
    during their start-up is neither lost nor a traceback.
    """

    def __init__(self) -> None:
        self.requested: str | None = None
        self.jobs: list[BaseProcess] = []

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.requested = self.requested or signal.Signals(signum).name
        for job in self.jobs:
            if job.pid is not None and job.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(job.pid, signum)

    def start(self, job: BaseProcess) -> None:
        """Start ``job`` with the stop signals blocked (:func:`stop_signals_held`)."""
        self.jobs.append(job)
        with stop_signals_held():
            job.start()

    @contextlib.contextmanager
    def installed(self) -> Iterator[Forwarder]:
        """Forward the signals for the duration of the block (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


@contextlib.contextmanager
def stop_signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM held back (blocked) in the block, then delivered: a process spawned
    in it starts with them blocked (the mask survives the exec) until it lets them in, once it
    handles them (:func:`job_signals`): a Ctrl-C during its start-up is then neither lost nor
    a traceback."""
    resource_tracker.ensure_running()  # launching it unblocks the signals: not in the block
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def job_signals(stopper: Stopper) -> None:
    """In a job process: handle the stop signals with ``stopper`` for the rest of its life, let
    in those held back since its start, and stop it as SIGTERM would if its parent dies."""
    stopper.install()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        warn(f"job process {os.getpid()}: its fedhpo tune process {parent} is gone; stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="fedhpo-parent-watch").start()


def ignore_stop_signals() -> None:
    """A job process whose work is done: a late signal from its parent changes nothing."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


class Heartbeat:
    """Records the trial's heartbeat every ``interval`` seconds from a daemon thread while the
    trial runs; another worker fails the trial once the heartbeat is older than the grace
    period (the process was killed)."""

    def __init__(self, storage: optuna.storages.BaseStorage, trial_id: int) -> None:
        self.storage = storage
        self.trial_id = trial_id
        interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
        self.interval: int | None = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="fedhpo-heartbeat")

    def _beat(self) -> None:
        assert self.interval is not None
        while not self._stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)  # type: ignore[attr-defined]
            except Exception as exc:  # the storage retried already; try again next beat
                warn(f"heartbeat of trial id {self.trial_id} not recorded: {exc}")

    def __enter__(self) -> Heartbeat:
        if self.interval is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            # A beat stuck in a database retry must not hold up the worker.
            self._thread.join(timeout=self.interval)
