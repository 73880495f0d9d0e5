"""The state of one running simulation and the server side of the event loop.

:class:`Run` is what a :class:`~fedhpo.sim.events.Schedule` acts on: it dispatches clients (timing them with the
clock and queueing their arrivals), cuts them, and performs a server update from the
dispatches a schedule hands it (train what the current version still owes, aggregate, step,
evaluate, record, call back). A finished run raises :class:`StopRun` with its status set.

A run in which no client update arrives (every client drops out, or misses the deadline)
would wait forever: FedBuff refills its slots and no buffer ever fills. Once
:func:`stall_limit` dispatches in a row have ended without an arrival, the run stops as
``stalled`` (:meth:`Run.check_stall`); a synchronous run whose rounds all closed without a
client is ``stalled`` too (:meth:`Run.check_used`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fedhpo.config import RunConfig
from fedhpo.sim.aggregate import Contributions, StalenessRule, aggregate
from fedhpo.sim.clock import Clock
from fedhpo.sim.data import FederatedDataset
from fedhpo.sim.evaluation import Evaluator
from fedhpo.sim.events import Dispatch, Event, EventKind, EventQueue, Schedule
from fedhpo.sim.result import RoundRecord, Status
from fedhpo.sim.sampling import sample_idle
from fedhpo.sim.work import Trainer, Work, WorkResult, steps_for, train_work

Params = dict[str, Tensor]
Callback = Callable[[int, Mapping[str, float]], "bool | None"]


class StopRun(Exception):
    """The run is over; :attr:`Run.status` and :attr:`Run.reason` say why."""


def stall_limit(num_clients: int) -> int:
    """Dispatches in a row without an arrival after which a run has stalled: 10 per client
    of the federation, at least 1,000 (even at a dropout of 0.99, 1,000 dispatches all drop
    out with a probability of 4e-5)."""
    return max(1000, 10 * num_clients)


class Run:
    """One simulation in progress (see the module docstring)."""

    def __init__(
        self,
        *,
        config: RunConfig,
        dataset: FederatedDataset,
        model: nn.Module,
        trainer: Trainer,
        clock: Clock,
        evaluator: Evaluator,
        server: Any,
        params: Params,
        callbacks: Sequence[Callback],
        log: list[Event] | None,
        start: float,
    ) -> None:
        self.config, self.dataset, self.model, self.trainer = config, dataset, model, trainer
        self.clock, self.evaluator, self.server, self.callbacks = (
            clock,
            evaluator,
            server,
            callbacks,
        )
        self.params, self.state, self.version = params, server.init(params), 0
        self.last_good = params  # the parameters before the latest update
        self.log, self.start = log, start
        self.model_bytes = 4 * sum(p.numel() for p in params.values())
        self.queue = EventQueue()
        self.t = self.last_update = 0.0
        self.in_flight: dict[int, Dispatch] = {}
        self.pending: list[Dispatch] = []  # dispatched at the current version, not trained
        self.batches = self.seq = 0
        self.dropped = self.cut_count = self.up = self.down = self.steps = 0
        # dispatches ended without an arrival since the last one, and how many of them late
        self.silent = self.silent_late = 0
        self.stall_limit = stall_limit(dataset.num_clients)
        self.records: list[RoundRecord] = []
        self.time_to_accuracy = math.nan
        self.status: Status = "completed"
        self.reason = f"ran all {config.federation.rounds} rounds"

    def note(self, kind: EventKind, d: Dispatch | None = None, **extra: Any) -> None:
        if self.log is not None:
            client, version = (d.client, d.version) if d else (-1, self.version)
            self.log.append(Event(self.t, kind, client, version, **extra))

    def dispatch(self, count: int, tag: int = 0, limit: float | None = None) -> list[Dispatch]:
        """Send the current model to ``count`` idle clients now; with ``limit``, each client
        takes only the local steps that let it report within ``limit`` seconds."""
        self.batches += 1
        j, n_clients, hp = self.batches, self.dataset.num_clients, self.config.client
        busy = {d.client for d in self.in_flight.values()}
        clients = sample_idle(self.config.seed, j, n_clients, count, busy)
        n = self.dataset.n_train[clients]
        steps = steps_for(n, hp.batch_size, hp.local_epochs, hp.local_steps)
        profile = self.clock.profile(clients, np.full(len(clients), hp.batch_size), j)
        if limit is not None:
            fit = profile.steps_within(limit)
            steps = np.where(fit >= 1, np.minimum(steps, fit), steps)
        arrival = profile.arrival(self.t, steps)
        dropped = self.clock.drops(clients, self.t, arrival, j)
        out = []
        rows = zip(
            clients.tolist(), arrival.tolist(), steps.tolist(), dropped.tolist(), strict=True
        )
        push, flight, version, t = self.queue.push, self.in_flight, self.version, self.t
        for seq, (c, at, s, drop) in enumerate(rows, start=self.seq):
            d = Dispatch(seq, c, version, j, tag, t, at, s, drop)
            flight[seq] = d
            push(at, "dropped" if drop else "arrived", d)
            out.append(d)
        self.seq += len(out)
        self.pending += [d for d in out if not d.dropped]
        if self.log is not None:
            for d in out:
                self.note("sent", d)
        self.down += self.model_bytes * len(out)
        return out

    def deadline(self, at: float, tag: int) -> None:
        self.queue.push(at, "deadline", None, tag)

    def handle(self, schedule: Schedule, t: float, kind: str, d: Dispatch | None, tag: int) -> None:
        """Apply one due event and tell the schedule (events of cut dispatches are void)."""
        self.t = t
        if d is None:
            self.note("deadline")
            schedule.on_deadline(tag)
        elif d.state == "flight":
            del self.in_flight[d.seq]
            if kind == "dropped":
                d.state, self.dropped = "dropped", self.dropped + 1
                self.silent += 1
                self.note("dropped", d)
                schedule.on_drop(d)
            else:
                d.state, self.up = "arrived", self.up + self.model_bytes
                self.silent = self.silent_late = 0
                self.note("arrived", d, staleness=self.version - d.version)
                schedule.on_arrival(d)

    def cut(self, d: Dispatch) -> None:
        """Leave ``d`` out: still in flight (late), or arrived but not to be used (stale)."""
        if d.state in ("flight", "arrived"):
            if d.state == "flight":
                self.silent, self.silent_late = self.silent + 1, self.silent_late + 1
            self.in_flight.pop(d.seq, None)
            d.state, self.cut_count = "cut", self.cut_count + 1
            self.note("cut", d)

    def _train_pending(self, r: int) -> None:
        """Train every dispatch the current version still owes, in one call."""
        todo = [d for d in self.pending if d.state != "cut"]
        self.pending = []
        if not todo:
            return
        work = Work(
            np.array([d.client for d in todo]),
            self.params,
            self.config.client,
            self.config.seed,
            np.array([d.stream for d in todo]),
            self.version,
            np.array([d.steps for d in todo]),
        )
        result = train_work(self.trainer, self.model, self.dataset, work)
        self.steps += int(result.steps.sum())
        if not result.finite.all():
            self._stop("diverged", f"diverged: non-finite training loss in round {r}")
        for i, d in enumerate(todo):
            d.result, d.row = result, i

    def update(self, used: Sequence[Dispatch], staleness: Sequence[int]) -> None:
        """One server update from the arrived dispatches ``used`` (in aggregation order)."""
        r = len(self.records) + 1
        self.last_good = self.params
        self._train_pending(r)
        train_loss, samples = math.nan, 0
        if used:
            contrib, losses = _gather(used, staleness)
            samples = int(contrib.num_samples.sum())
            pairs = zip(losses.tolist(), contrib.num_samples.tolist(), strict=True)
            train_loss = sum(loss * n for loss, n in pairs) / max(samples, 1)
            if not math.isfinite(train_loss):
                self._stop("diverged", f"diverged: non-finite training loss in round {r}")
            fed, buff = self.config.federation, self.config.fedbuff
            rule = StalenessRule()
            if fed.mode == "async":
                rule = StalenessRule(buff.staleness, buff.staleness_exponent, buff.staleness_offset)
            delta = aggregate(contrib, fed.weighting, rule)
            params, state = self.server.step(self.params, delta, self.state)
            if not all(bool(torch.isfinite(p).all()) for p in params.values()):
                self._stop("diverged", f"diverged: non-finite model parameters in round {r}")
            self.params, self.state, self.version = params, state, self.version + 1
        self.note("update")
        self._record(r, train_loss, len(used), samples, staleness)

    def _record(
        self, r: int, train_loss: float, clients: int, samples: int, staleness: Sequence[int]
    ) -> None:
        fed = self.config.federation
        val = self.evaluator.validate(self.params)
        test = None
        if r % fed.eval_every == 0 or r == fed.rounds:
            test = self.evaluator.test(self.params)
        record = RoundRecord(
            round=r,
            train_loss=train_loss,
            val_loss=val.loss,
            val_accuracy=val.accuracy,
            test_loss=test.loss if test else None,
            test_accuracy=test.accuracy if test else None,
            clients=clients,
            samples=samples,
            bytes_up=self.up,
            bytes_down=self.down,
            wall_seconds=time.perf_counter() - self.start,
            sim_seconds=self.t,
            update_seconds=self.t - self.last_update,
            dropped=self.dropped,
            cut=self.cut_count,
            staleness=float(np.mean(staleness)) if len(staleness) else 0.0,
            steps=self.steps,
        )
        self.records.append(record)
        self.last_update, self.dropped, self.cut_count, self.up, self.down = self.t, 0, 0, 0, 0
        self.steps = 0
        if val.count and not math.isfinite(val.loss):
            self.params = self.last_good  # keep the last good parameters, not the blown-up
            self._stop("diverged", f"diverged: non-finite validation loss in round {r}")
        metrics = {k: v for k, v in record.__dict__.items() if v is not None}
        stop = any([bool(cb(r, metrics)) for cb in self.callbacks])
        target = fed.target_accuracy
        if target is not None and val.count and val.accuracy >= target:
            self.time_to_accuracy = self.t
            self._stop("completed", f"reached validation accuracy {target:g} in round {r}")
        if r == fed.rounds:
            raise StopRun
        if fed.time_budget is not None and self.t >= fed.time_budget:
            budget = f"{fed.time_budget:g}"
            self._stop("completed", f"reached the simulated-time budget ({budget} s) in round {r}")
        if stop:
            self._stop("stopped", f"stopped by a callback after round {r}")

    def check_stall(self) -> None:
        """Stop the run (``stalled``) once :attr:`stall_limit` dispatches in a row ended
        without an arrival: no update is coming. A run past ``federation.time_budget`` says
        it reached the budget; one that does update stops at the first update at or past it
        (:meth:`_record`)."""
        if self.silent < self.stall_limit:
            return
        what = f"no client update arrived in the last {self.silent:,} dispatches: "
        what += self._nobody(self.silent - self.silent_late, self.silent_late)
        budget = self.config.federation.time_budget
        if budget is not None and self.t >= budget:
            since = f"round {len(self.records)}" if self.records else "the start"
            budget_text = f"{budget:g}"
            self._stop(
                "stalled",
                f"reached the simulated-time budget ({budget_text} s) with no update since "
                f"{since}: {what}",
            )
        self._stop("stalled", f"stalled: {what}")

    def check_used(self) -> None:
        """A completed run none of whose rounds used a client update is ``stalled``: it
        trained nothing (its train loss is nan, its model the initial one)."""
        records = self.records
        if self.status != "completed" or not records or any(r.clients for r in records):
            return
        dropped, cut = sum(r.dropped for r in records), sum(r.cut for r in records)
        rounds = f"any of the {len(records):,} rounds" if len(records) > 1 else "its one round"
        self.status = "stalled"
        self.reason = f"no client update was used in {rounds}: {self._nobody(dropped, cut)}"

    def _nobody(self, dropped: int, late: int) -> str:
        """Why no update came, and the settings to look at."""
        keys = "systems.dropout / systems.window_on / systems.window_period"
        if self.config.federation.deadline is None or not late:
            return f"every client dropped out; check {keys}"
        if not dropped:
            return "every client missed the deadline; check federation.deadline"
        keys += " / federation.deadline"
        return f"every client dropped out or missed the deadline; check {keys}"

    def _stop(self, status: Status, reason: str) -> None:
        self.status, self.reason = status, reason
        raise StopRun


def _gather(used: Sequence[Dispatch], staleness: Sequence[int]) -> tuple[Contributions, Any]:
    """The used dispatches' rows as stacked contributions (no copy when they are one whole
    trained work in order, as in a lock-step round), and their losses."""
    first = used[0].result
    assert first is not None
    whole = len(used) == len(first) and all(
        d.result is first and d.row == i for i, d in enumerate(used)
    )
    stale = np.array(staleness, dtype=np.int64)
    if whole:
        return Contributions(first.deltas, first.num_samples, stale), first.losses
    results: list[tuple[WorkResult, int]] = [(d.result, d.row) for d in used]  # type: ignore[misc]
    deltas = {k: torch.stack([res.deltas[k][i] for res, i in results]) for k in first.deltas}
    n = np.array([res.num_samples[i] for res, i in results], dtype=np.int64)
    losses = np.array([res.losses[i] for res, i in results])
    return Contributions(deltas, n, stale), losses
