"""Ground truth: every grid point of a problem run at full fidelity, cached on disk."""

from __future__ import annotations

import json
import multiprocessing as mp
import statistics
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fedhpo.bench.quality._problems import Problem, point_key
from fedhpo.config import RunConfig
from fedhpo.sim.batch import batch_key, run_batch
from fedhpo.sim.datasets import build_dataset
from fedhpo.sim.result import SimulationResult
from fedhpo.tune import full_config

Log = Callable[[str], None]

#: Per-round series a table keeps of every run (what a replayed trial reports).
SERIES = ("val_accuracy", "val_loss", "train_loss", "steps")


@dataclass(frozen=True)
class Table:
    """Recorded full-fidelity runs: ``runs[point_key][seed]`` is one run's record
    (``status``, ``reason``, the :data:`SERIES` per round, final ``test_accuracy``)."""

    problem: str
    key: str
    metric: str
    points: list[dict[str, Any]]
    runs: dict[str, dict[str, dict[str, Any]]]
    seconds: float
    """Wall seconds the grid took to compute."""

    def run(self, point: Mapping[str, Any], seed: int) -> dict[str, Any]:
        """The record of ``point`` at ``seed`` (KeyError if the table lacks it)."""
        return self.runs[point_key(point)][str(seed)]

    def final(self, point: Mapping[str, Any], seed: int) -> float:
        """The objective metric at the last round (nan if the run diverged)."""
        run = self.run(point, seed)
        values = run[self.metric]
        if run["status"] != "completed" or not values or values[-1] is None:
            return float("nan")
        return float(values[-1])

    def truth(self, point: Mapping[str, Any], seeds: tuple[int, ...]) -> float:
        """Ground truth of ``point``: mean final metric over ``seeds`` (a diverged run counts
        as the worst possible value, 0 for accuracies)."""
        values = [self.final(point, s) for s in seeds]
        return statistics.fmean(0.0 if v != v else v for v in values)

    def to_json(self) -> dict[str, Any]:
        return {
            "problem": self.problem,
            "key": self.key,
            "metric": self.metric,
            "points": self.points,
            "runs": self.runs,
            "seconds": self.seconds,
        }


def _record(result: SimulationResult) -> dict[str, Any]:
    out: dict[str, Any] = {"status": result.status, "reason": result.reason}
    for name in SERIES:
        out[name] = [_finite(getattr(r, name)) for r in result.rounds]
    out["test_accuracy"] = _finite(result.test_accuracy)
    return out


def _finite(value: Any) -> Any:
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        return None
    return value


def _run_chunk(configs: list[RunConfig]) -> list[dict[str, Any]]:
    """Worker: one batched pass (the configs share a seed and a batch schedule)."""
    torch.set_num_threads(1)
    dataset = build_dataset(configs[0].data)
    return [_record(r) for r in run_batch(configs, dataset)]


def _chunks(problem: Problem) -> list[list[tuple[str, int, RunConfig]]]:
    """(point key, seed, config) triples grouped into batched passes."""
    base = problem.space().base
    groups: dict[tuple[int, str], list[tuple[str, int, RunConfig]]] = {}
    for point in problem.points():
        for seed in problem.seeds:
            config = full_config(base, point, seed)
            groups.setdefault((seed, batch_key(config)), []).append(
                (point_key(point), seed, config)
            )
    return sorted(groups.values(), key=len, reverse=True)


def compute_table(problem: Problem, jobs: int = 2, log: Log = print) -> Table:
    """Run the whole grid (``jobs`` processes, one batched pass per seed and schedule)."""
    start = time.perf_counter()
    chunks = _chunks(problem)
    runs: dict[str, dict[str, dict[str, Any]]] = {}
    log(f"{problem.name}: ground truth, {len(problem.points())} points x "
        f"{len(problem.seeds)} seeds in {len(chunks)} batched passes")  # fmt: skip
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max(1, jobs), mp_context=ctx) as pool:
        futures = [pool.submit(_run_chunk, [c for _, _, c in chunk]) for chunk in chunks]
        for done, (chunk, future) in enumerate(zip(chunks, futures, strict=True), 1):
            for (key, seed, _), record in zip(chunk, future.result(), strict=True):
                runs.setdefault(key, {})[str(seed)] = record
            log(f"  pass {done}/{len(chunks)} done ({time.perf_counter() - start:.0f} s)")
    metric = problem.space().objectives[0].metric
    return Table(problem.name, problem.key(), metric, problem.points(), runs,
                 time.perf_counter() - start)  # fmt: skip


def cache_path(problem: Problem, cache_dir: Path) -> Path:
    """The cache file of a problem: its name and :meth:`Problem.key`."""
    return cache_dir / f"{problem.name}-{problem.key()}.json"


def load_or_compute(problem: Problem, cache_dir: Path, jobs: int = 2, log: Log = print) -> Table:
    """The cached table if the problem (and fedhpo version) is unchanged, else compute it."""
    path = cache_path(problem, cache_dir)
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        log(f"{problem.name}: ground truth from {path} (computed in {data['seconds']:.0f} s)")
        return Table(**data)
    table = compute_table(problem, jobs, log)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(table.to_json()), encoding="utf-8")
    tmp.replace(path)
    return table
