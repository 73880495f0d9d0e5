"""A worker's liveness: the heartbeat thread of its running trial, and SIGINT/SIGTERM handling
that stops a trial at a safe point instead of killing the process mid-write."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import optuna

from fedhpo.store import retry
from fedhpo.store.retry import warn


class Stopper:
    """SIGINT and SIGTERM ask the worker to stop.

    During a trial's run the signal raises ``KeyboardInterrupt`` (the engine ends the run after
    the current client; the worker then fails the trial cleanly and queues it again); between
    trials it only sets :attr:`requested`, so no database write is cut in half. A second
    signal raises at once, except inside :meth:`shielded` (failing a stopped trial and
    queueing it again), where it raises at the end of the block.
    """

    def __init__(self) -> None:
        self.requested: str | None = None
        self.in_trial = False
        self._wake = threading.Event()
        self._shields = 0  # nested shielded() blocks
        self._deferred = False

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        again = self.requested is not None
        self.requested = signal.Signals(signum).name
        self._wake.set()
        if again or not self.in_trial:  # a wait for the database ends: the worker is to stop
            retry.GIVE_UP.set()  # (in a trial the first signal leaves the writes that stop
            # it cleanly their retries; a second one is the way out of those too)
        if self._shields:
            self._deferred = True
        elif self.in_trial or again:
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
    def installed(self) -> Iterator[Stopper]:
        """Handle the signals for the duration of the block (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        retry.GIVE_UP.clear()
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
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
