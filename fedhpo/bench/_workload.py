"""Timed runs, fast vs reference cohort trainer in one process: workload W (GUIDE.md), or
any run config (``fedhpo bench --workload run --config PATH``)."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fedhpo.config import RunConfig, config_from_dict
from fedhpo.sim.datasets import build_dataset
from fedhpo.sim.engine import FAST, REFERENCE, Trainer, run_simulation
from fedhpo.sim.fast import fast_path
from fedhpo.sim.models import build_model

Log = Callable[[str], None]

TRAINERS: dict[str, Trainer] = {"fast": FAST, "reference": REFERENCE}


def workload_w_config(rounds: int = 30, clients: int = 1000, seed: int = 0) -> RunConfig:
    """Workload W as GUIDE.md defines it: MLP 60-64-10, FedAvg, 100 clients per round, one
    local epoch of batch-16 SGD at lr 0.05; test accuracy at the end only (``eval_every =
    rounds``), no validation rows (``val_fraction = 0``) so evaluation costs nothing."""
    return config_from_dict(
        {
            "data": {
                "name": "workload_w",
                "options": {"num_clients": clients},
                "val_fraction": 0.0,
                "seed": 0,
            },
            "model": {"name": "mlp", "options": {"hidden": [64]}},
            "client": {"lr": 0.05, "batch_size": 16, "local_epochs": 1},
            "server": {"optimizer": "sgd", "lr": 1.0},
            "federation": {
                "rounds": rounds,
                "clients_per_round": min(100, clients),
                "eval_every": rounds,
                "val_clients": min(10, clients),
            },
            "seed": seed,
        }
    )


@dataclass(frozen=True)
class TrainerFigures:
    """One cohort trainer's figures on the workload (medians over its repeats)."""

    trainer: str
    path: str
    """The route the trainer took for this model ("linear", "vmap" or "reference")."""
    seconds_per_round: float
    """Median over all rounds of all repeats (the first repeat, with warm-up, included)."""
    steady_seconds_per_round: float
    """Median over the rounds of repeats 2.. (steady state: the first repeat pays one-time
    warm-up); the same as ``seconds_per_round`` with one repeat."""
    first_run_seconds: float
    """The first repeat's whole run (warm-up included)."""
    total_seconds: float
    """Median over repeats of one whole run (rounds, final evaluation)."""
    updates_per_second: float
    """Client updates trained per second of round time (all repeats)."""
    test_accuracy: float
    """Final test accuracy (the same in every repeat)."""
    peak_rss_bytes: int
    """Process peak resident memory after this trainer's runs (a high-water mark)."""


@dataclass(frozen=True)
class WorkloadReport:
    """A timed workload's figures for each trainer, measured in one process."""

    name: str
    """What was timed: "workload W", or the run config's path."""
    clients: int
    cohort: int
    rounds: int
    repeats: int
    rows: int
    raw_bytes: int
    """Size of the raw float32 arrays: training x plus test x."""
    build_seconds: float
    rss_before_build_bytes: int
    rss_after_build_bytes: int
    trainers: tuple[TrainerFigures, ...]

    @property
    def speedup(self) -> float | None:
        """Reference seconds per round over fast seconds per round (None without both)."""
        by = {t.trainer: t.seconds_per_round for t in self.trainers}
        if "fast" in by and "reference" in by and by["fast"] > 0:
            return by["reference"] / by["fast"]
        return None

    @property
    def steady_speedup(self) -> float | None:
        """The same ratio on the steady-state figures (repeats after the first)."""
        by = {t.trainer: t.steady_seconds_per_round for t in self.trainers}
        if "fast" in by and "reference" in by and by["fast"] > 0:
            return by["reference"] / by["fast"]
        return None


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_workload_w(
    rounds: int = 30,
    repeats: int = 1,
    clients: int = 1000,
    trainers: tuple[str, ...] = ("fast", "reference"),
    log: Log | None = None,
) -> WorkloadReport:
    """Workload W timed by :func:`time_config`."""
    config = workload_w_config(rounds, clients)
    return time_config(config, repeats, trainers, log, label="workload W")


def time_config(
    config: RunConfig,
    repeats: int = 1,
    trainers: tuple[str, ...] = ("fast", "reference"),
    log: Log | None = None,
    label: str = "run",
) -> WorkloadReport:
    """Build the config's data once, then run it ``repeats`` times with each trainer
    (interleaved, so machine noise hits both alike) and collect the figures; ``label`` names
    the report."""
    say = log or (lambda _msg: None)
    rounds = config.federation.rounds
    rss_before = peak_rss_bytes()
    start = time.perf_counter()
    dataset = build_dataset(config.data)
    build_seconds = time.perf_counter() - start
    rss_after = peak_rss_bytes()
    say(f"built {dataset!r} in {build_seconds:.2f} s")
    model = build_model(config.model, dataset.feature_shape, dataset.num_classes, 0)
    laps: dict[str, list[float]] = {name: [] for name in trainers}
    totals: dict[str, list[float]] = {name: [] for name in trainers}
    updates: dict[str, int] = dict.fromkeys(trainers, 0)
    accuracy: dict[str, float] = {}
    peak: dict[str, int] = {}
    first: dict[str, int] = {}  # laps of the first repeat
    for rep in range(repeats):
        for name in trainers:
            result = run_simulation(config, dataset, trainer=TRAINERS[name])
            ends = [r.wall_seconds for r in result.rounds]
            laps[name] += np.diff([0.0, *ends]).tolist()
            first.setdefault(name, len(ends))
            totals[name].append(result.wall_seconds)
            updates[name] += sum(r.clients for r in result.rounds)
            accuracy[name] = result.test_accuracy
            peak[name] = peak_rss_bytes()
            say(
                f"{name} run {rep + 1}/{repeats}: {result.wall_seconds:.2f} s, "
                f"test accuracy {result.test_accuracy:.4f} ({result.status})"
            )
    figures = tuple(
        TrainerFigures(
            trainer=name,
            path=fast_path(model) if name == "fast" else "reference",
            seconds_per_round=statistics.median(laps[name]),
            steady_seconds_per_round=statistics.median(laps[name][first[name] :] or laps[name]),
            first_run_seconds=totals[name][0],
            total_seconds=statistics.median(totals[name]),
            updates_per_second=updates[name] / max(sum(laps[name]), 1e-12),
            test_accuracy=accuracy[name],
            peak_rss_bytes=peak[name],
        )
        for name in trainers
    )
    return WorkloadReport(
        name=label,
        clients=dataset.num_clients,
        cohort=config.federation.cohort_size(dataset.num_clients),
        rounds=rounds,
        repeats=repeats,
        rows=len(dataset.x),
        raw_bytes=dataset.x.numel() * 4 + dataset.test_x.numel() * 4,
        build_seconds=build_seconds,
        rss_before_build_bytes=rss_before,
        rss_after_build_bytes=rss_after,
        trainers=figures,
    )
