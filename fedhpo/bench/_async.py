"""Benchmark: workload W on a heterogeneous federation, synchronous rounds against FedBuff.

W (GUIDE.md) with lognormal(sigma 1) client speeds and 10% dropout per dispatch (the other
``systems`` keys at their defaults). The synchronous baseline runs W's 30 rounds and waits
for every client; its final test accuracy is the target. FedBuff then runs until its test
accuracy (checked every ``eval_every`` server updates) reaches that target, or until it has
used the baseline's simulated time. Both run with the fast and the reference trainer in one
process, so the wall time per server update of the two trainers is measured alike.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedhpo.bench._workload import TRAINERS, workload_w_config
from fedhpo.config import RunConfig
from fedhpo.sim.data import FederatedDataset
from fedhpo.sim.datasets import build_dataset
from fedhpo.sim.engine import run_simulation
from fedhpo.sim.result import SimulationResult

Log = Callable[[str], None]

#: The heterogeneous federation of the benchmark.
SYSTEMS = {"systems.speed_sigma": 1.0, "systems.dropout": 0.1}

#: FedBuff as its paper runs it by default (buffer of 10, polynomial staleness weight
#: (1 + s)^-0.5), with W's cohort as the concurrency and W's client and server settings.
FEDBUFF = {
    "federation.mode": "async",
    "fedbuff.buffer_size": 10,
    "fedbuff.staleness": "polynomial",
    "fedbuff.staleness_exponent": 0.5,
}


@dataclass(frozen=True)
class ScheduleFigures:
    """One schedule run with one trainer."""

    schedule: str
    trainer: str
    updates: int
    """Server updates run."""
    sim_seconds: float
    """Simulated time of the last update (the baseline's total; FedBuff's time to target)."""
    test_accuracy: float
    """Final test accuracy of the run (the target, for the baseline)."""
    reached: bool
    """Whether the run reached the target accuracy (always True for the baseline)."""
    ms_per_update: float
    """Median wall milliseconds per server update."""
    dropped: int
    cut: int


@dataclass(frozen=True)
class AsyncReport:
    """The figures of the asynchronous benchmark, per schedule and trainer."""

    clients: int
    target: float
    rows: tuple[ScheduleFigures, ...]

    def get(self, schedule: str, trainer: str = "fast") -> ScheduleFigures | None:
        for row in self.rows:
            if (row.schedule, row.trainer) == (schedule, trainer):
                return row
        return None

    @property
    def time_ratio(self) -> float | None:
        """FedBuff's simulated time to the target over the baseline's (the target is <= 0.5)."""
        sync, buff = self.get("sync"), self.get("fedbuff")
        if sync is None or buff is None or not buff.reached or not sync.sim_seconds:
            return None
        return buff.sim_seconds / sync.sim_seconds

    def speedup(self, schedule: str) -> float | None:
        """Reference over fast wall time per server update."""
        fast, ref = self.get(schedule, "fast"), self.get(schedule, "reference")
        if fast is None or ref is None or fast.ms_per_update <= 0:
            return None
        return ref.ms_per_update / fast.ms_per_update


def async_configs(
    clients: int = 1000, rounds: int = 30, eval_every: int = 5
) -> tuple[RunConfig, RunConfig]:
    """(synchronous baseline, FedBuff) on the heterogeneous W; FedBuff may run 50x the
    baseline's rounds, checking test accuracy every ``eval_every`` updates."""
    sync = workload_w_config(rounds, clients).with_values(SYSTEMS)
    fed = sync.federation
    buff = FEDBUFF | {
        "fedbuff.concurrency": fed.cohort_size(clients),
        "federation.rounds": 50 * fed.rounds,
        "federation.eval_every": eval_every,
    }
    return sync, sync.with_values(buff)


def _figures(schedule: str, trainer: str, result: SimulationResult, target: float):
    ends = [r.wall_seconds for r in result.rounds]
    laps = np.diff([0.0, *ends]).tolist()
    accs = [r.test_accuracy for r in result.rounds if r.test_accuracy is not None]
    return ScheduleFigures(
        schedule=schedule,
        trainer=trainer,
        updates=len(result.rounds),
        sim_seconds=result.sim_seconds,
        test_accuracy=accs[-1] if accs else math.nan,
        reached=bool(accs) and accs[-1] >= target,
        ms_per_update=1e3 * statistics.median(laps) if laps else math.nan,
        dropped=result.clients_dropped,
        cut=result.clients_cut,
    )


def _until(target: float, budget: float) -> Callable[[int, Mapping[str, float]], bool]:
    def stop(_update: int, metrics: Mapping[str, Any]) -> bool:
        acc = metrics.get("test_accuracy")
        return (acc is not None and acc >= target) or metrics["sim_seconds"] >= budget

    return stop


def run_async_bench(
    clients: int = 1000,
    rounds: int = 30,
    trainers: tuple[str, ...] = ("fast", "reference"),
    dataset: FederatedDataset | None = None,
    log: Log | None = None,
) -> AsyncReport:
    """Run the baseline, take its accuracy as the target, then FedBuff to the target."""
    say = log or (lambda _msg: None)
    sync, buff = async_configs(clients, rounds)
    data = dataset if dataset is not None else build_dataset(sync.data)
    rows: list[ScheduleFigures] = []
    target = math.nan
    for name in trainers:
        result = run_simulation(sync, data, trainer=TRAINERS[name])
        target = result.test_accuracy if math.isnan(target) else target
        rows.append(_figures("sync", name, result, target))
        say(f"sync/{name}: {result.sim_seconds:.1f} simulated s, accuracy {target:.4f}")
    baseline = rows[0].sim_seconds
    for name in trainers:
        stop = _until(target, baseline)
        result = run_simulation(buff, data, trainer=TRAINERS[name], callbacks=[stop])
        rows.append(_figures("fedbuff", name, result, target))
        say(f"fedbuff/{name}: {result.sim_seconds:.1f} simulated s, {len(result.rounds)} updates")
    return AsyncReport(clients=data.num_clients, target=target, rows=tuple(rows))
