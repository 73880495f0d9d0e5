"""Schedules of the event engine: synchronous rounds (the barrier case) and FedBuff.

:class:`Barrier`: each round dispatches ``ceil((1 + over_selection) * cohort)`` clients at
once (:meth:`~fedhpo.config.FederationConfig.dispatch_size`; the cohort of round ``r`` is
``sample_cohort(seed, r, ...)``) and closes when every client has reported or dropped out,
when ``cohort`` updates are in, or at the deadline, whichever comes first; clients still out
are cut. With ``stragglers: partial`` each client is asked only for the local steps that let
it report before the deadline (FedProx-style variable local work). The round's updates are
aggregated in dispatch order, so a round without heterogeneity computes exactly what a plain
round loop does. The next round starts when one closes.

:class:`FedBuff` (Nguyen et al., AISTATS 2022): up to ``concurrency`` clients train at
once, each on the model version it was sent. Every arriving update goes into a buffer with
its staleness (server updates since its version); updates staler than ``max_staleness``
are cut. When ``buffer_size`` updates are in, the server aggregates them (each weighted by
its sample count or uniformly, times the staleness rule) and steps with
``server.optimizer`` and ``server.lr``. Freed slots are refilled once all events of the
moment are handled, so the clients sent together (same version) train in one vectorized
call. ``buffer_size`` 1 is FedAsync. With ``buffer_size`` = ``concurrency`` = the cohort,
equal trip times and no dropout it is synchronous FedAvg, update for update.
"""

from __future__ import annotations

from fedhpo.sim._run import Run
from fedhpo.sim.events import Dispatch

__all__ = ["Barrier", "FedBuff"]


class Barrier:
    """Synchronous FedAvg-style rounds (a :class:`~fedhpo.sim.events.Schedule`)."""

    def __init__(self, run: Run, cohort: int) -> None:
        fed = run.config.federation
        self.run = run
        self.target = cohort
        self.size = fed.dispatch_size(cohort, run.dataset.num_clients)
        self.deadline = fed.deadline
        self.limit = fed.deadline if fed.stragglers == "partial" else None
        self.round = 0
        self.out: dict[int, Dispatch] = {}
        self.arrived: list[Dispatch] = []
        self.closed = True

    def start(self) -> None:
        self._begin()

    def _begin(self) -> None:
        self.round += 1
        self.arrived, self.closed = [], False
        sent = self.run.dispatch(self.size, tag=self.round, limit=self.limit)
        self.out = {d.seq: d for d in sent}
        if self.deadline is not None:
            self.run.deadline(self.run.t + self.deadline, self.round)

    def on_arrival(self, d: Dispatch) -> None:
        del self.out[d.seq]
        self.arrived.append(d)
        self._check()

    def on_drop(self, d: Dispatch) -> None:
        del self.out[d.seq]
        self._check()

    def on_deadline(self, tag: int) -> None:
        if tag == self.round and not self.closed:
            self._close()

    def _check(self) -> None:
        if not self.out or len(self.arrived) >= self.target:
            self._close()

    def _close(self) -> None:
        self.closed = True
        for d in self.out.values():
            self.run.cut(d)
        self.out = {}
        used = sorted(self.arrived, key=lambda d: d.seq)
        self.run.update(used, [0] * len(used))

    def after(self) -> None:
        if self.closed:
            self._begin()


class FedBuff:
    """Buffered asynchronous aggregation (a :class:`~fedhpo.sim.events.Schedule`)."""

    def __init__(self, run: Run, cohort: int) -> None:
        cfg = run.config.fedbuff
        self.run = run
        self.concurrency = min(cfg.concurrency or cohort, run.dataset.num_clients)
        self.size = cfg.buffer_size
        self.max_staleness = cfg.max_staleness
        self.buffer: list[Dispatch] = []
        self.staleness: list[int] = []

    def start(self) -> None:
        self.run.dispatch(self.concurrency)

    def on_arrival(self, d: Dispatch) -> None:
        s = self.run.version - d.version
        if self.max_staleness is not None and s > self.max_staleness:
            self.run.cut(d)
            return
        self.buffer.append(d)
        self.staleness.append(s)
        if len(self.buffer) == self.size:
            used, staleness = self.buffer, self.staleness
            self.buffer, self.staleness = [], []
            self.run.update(used, staleness)

    def on_drop(self, d: Dispatch) -> None:
        pass

    def on_deadline(self, tag: int) -> None:
        pass

    def after(self) -> None:
        free = self.concurrency - len(self.run.in_flight)
        if free > 0:
            self.run.dispatch(free)
