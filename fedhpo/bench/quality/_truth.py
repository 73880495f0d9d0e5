"""Ground truth: every grid point of a problem run at full fidelity, cached run by run."""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import statistics
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedhpo import __version__
from fedhpo._pools import stop_pool
from fedhpo.bench.quality._problems import Problem, point_key
from fedhpo.config import RunConfig
from fedhpo.sim.batch import batch_key, run_batch
from fedhpo.sim.datasets import build_dataset
from fedhpo.sim.fast import NUMERICS
from fedhpo.sim.result import SimulationResult
from fedhpo.sim.threads import set_threads
from fedhpo.tune import full_config

Log = Callable[[str], None]

#: Per-round series a table keeps of every run (what a replayed trial reports).
SERIES = ("val_accuracy", "val_loss", "train_loss", "steps")


@dataclass(frozen=True)
class Table:
    """Recorded full-fidelity runs: ``runs[point_key][seed]`` is one run's record
    (``status``, ``reason``, the :data:`SERIES` per round, final ``test_accuracy``, and for
    a diverged run the ``unrecorded_steps`` of the round it diverged in)."""

    problem: str
    metric: str
    points: list[dict[str, Any]]
    runs: dict[str, dict[str, dict[str, Any]]]
    seconds: float
    """Seconds of compute the runs took (each run's share of its batched pass, summed over
    runs: about the wall time on one process)."""

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


def _record(result: SimulationResult) -> dict[str, Any]:
    out: dict[str, Any] = {"status": result.status, "reason": result.reason}
    for name in SERIES:
        out[name] = [_finite(getattr(r, name)) for r in result.rounds]
    out["test_accuracy"] = _finite(result.test_accuracy)
    if result.status == "diverged":
        out["unrecorded_steps"] = result.unrecorded_steps  # the round it diverged in
    return out


def _stale(record: Mapping[str, Any]) -> bool:
    """A diverged run cached before fedhpo counted the steps of the round it diverged in."""
    return record["status"] == "diverged" and "unrecorded_steps" not in record


def _finite(value: Any) -> Any:
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        return None
    return value


def run_key(config: RunConfig) -> str:
    """What a cached run is found by: its whole config (point and seed included), the
    fedhpo version and the fast trainer's rounding (:data:`~fedhpo.sim.fast.NUMERICS`), so
    any problem whose grid holds that run reuses it."""
    key = {"version": __version__, "numerics": NUMERICS, "config": config.to_dict()}
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class GridRun:
    """One full run the ground truth needs: a grid point at a seed."""

    point: dict[str, Any]
    seed: int
    config: RunConfig
    key: str


def _wanted(problem: Problem, points: list[dict[str, Any]]) -> list[GridRun]:
    base = problem.space().base
    out = []
    for point in points:
        for seed in problem.seeds:
            config = full_config(base, point, seed)
            out.append(GridRun(point, seed, config, run_key(config)))
    return out


def _run_chunk(configs: list[RunConfig]) -> tuple[list[dict[str, Any]], float]:
    """Worker: one batched pass (the configs share a seed and a batch schedule) and the
    seconds it took."""
    set_threads(1)
    start = time.perf_counter()
    dataset = build_dataset(configs[0].data)
    records = [_record(r) for r in run_batch(configs, dataset)]
    return records, time.perf_counter() - start


def _chunks(runs: list[GridRun]) -> list[list[GridRun]]:
    """``runs`` grouped into batched passes (one per seed and batch schedule), largest first."""
    groups: dict[tuple[int, str], list[GridRun]] = {}
    for run in runs:
        groups.setdefault((run.seed, batch_key(run.config)), []).append(run)
    return sorted(groups.values(), key=len, reverse=True)


def compute_runs(
    name: str, runs: list[GridRun], path: Path, jobs: int = 2, log: Log = print
) -> dict[str, dict[str, Any]]:
    """Run ``runs`` at full fidelity (``jobs`` processes) and append each finished pass to the
    cache file ``path``, so an interrupted grid keeps what it ran. Returns the new lines by key.

    Each line records how its run was made: ``run_batch`` equals single runs only to float
    rounding and depends on which configs share a pass, so a run computed later, in a smaller
    pass, can differ in the last bits from the one a whole-grid pass would have given.
    """
    start = time.perf_counter()
    chunks = _chunks(runs)
    log(f"{name}: running {len(runs)} full runs in {len(chunks)} batched passes")
    lines: dict[str, dict[str, Any]] = {}
    path.parent.mkdir(parents=True, exist_ok=True)
    _end_line(path)
    ctx = mp.get_context("spawn")
    pool = ProcessPoolExecutor(max(1, jobs), mp_context=ctx)
    try:
        _write_passes(pool, chunks, path, lines, start, log)
    except BaseException:  # Ctrl-C or SIGTERM: the passes not written are dropped, not run on
        stop_pool(pool)
        raise
    pool.shutdown()
    return lines


def _write_passes(
    pool: ProcessPoolExecutor,
    chunks: list[list[GridRun]],
    path: Path,
    lines: dict[str, dict[str, Any]],
    start: float,
    log: Log,
) -> None:
    """Run the passes in ``pool`` and append each to ``path`` (and ``lines``) as it ends."""
    with path.open("a") as out:
        futures = [pool.submit(_run_chunk, [r.config for r in chunk]) for chunk in chunks]
        for done, (chunk, future) in enumerate(zip(chunks, futures, strict=True), 1):
            records, seconds = future.result()
            for run, record in zip(chunk, records, strict=True):
                line = {
                    "key": run.key,
                    "version": __version__,
                    "point": run.point,
                    "seed": run.seed,
                    "made": {"pass_runs": len(chunk), "seconds": seconds / len(chunk)},
                    "record": record,
                }
                lines[run.key] = line
                out.write(json.dumps(line) + "\n")
            out.flush()
            log(f"  pass {done}/{len(chunks)} done ({time.perf_counter() - start:.0f} s)")


def _end_line(path: Path) -> None:
    """End a last line cut short by a crash, so the next append starts a line of its own."""
    if path.is_file() and path.stat().st_size:
        with path.open("rb+") as f:
            f.seek(-1, 2)
            if f.read(1) != b"\n":
                f.write(b"\n")


def cache_path(problem: Problem, cache_dir: Path) -> Path:
    """The cache file of a problem's runs (JSON lines, appended to as runs are made)."""
    return cache_dir / f"{problem.name}.runs.jsonl"


def read_cache(path: Path, log: Log = print) -> dict[str, dict[str, Any]]:
    """The cached runs by :func:`run_key` (a line cut short by a crash is skipped)."""
    lines: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return lines
    with path.open(encoding="utf-8") as f:
        for number, text in enumerate(f, 1):
            try:
                line = json.loads(text)
            except json.JSONDecodeError:
                log(f"{path}:{number}: not a whole JSON line (an interrupted write?); skipped")
                continue
            lines[line["key"]] = line
    return lines


def load_or_compute(problem: Problem, cache_dir: Path, jobs: int = 2, log: Log = print) -> Table:
    """The problem's table: runs cached under ``cache_dir`` are reused (same config, seed and
    fedhpo version), only the missing ones are run, and diverged runs cached without
    ``unrecorded_steps`` (by a fedhpo that did not count the round a run diverged in)."""
    path = cache_path(problem, cache_dir)
    cached = read_cache(path, log)
    points = problem.points()
    wanted = _wanted(problem, points)
    stale = [w for w in wanted if w.key in cached and _stale(cached[w.key]["record"])]
    missing = [w for w in wanted if w.key not in cached] + stale
    log(f"{problem.name}: ground truth, {len(points)} points x "
        f"{len(problem.seeds)} seeds; {len(wanted) - len(missing)} runs cached in {path}")  # fmt: skip
    if stale:
        log(f"  {len(stale)} diverged run{'s' if len(stale) > 1 else ''} cached without the "
            "steps of the round it diverged in: run again to count them")  # fmt: skip
    if missing:
        cached.update(compute_runs(problem.name, missing, path, jobs, log))
    runs: dict[str, dict[str, dict[str, Any]]] = {}
    for w in wanted:
        runs.setdefault(point_key(w.point), {})[str(w.seed)] = cached[w.key]["record"]
    metric = problem.space().objectives[0].metric
    seconds = sum(cached[w.key]["made"]["seconds"] for w in wanted)
    return Table(problem.name, metric, points, runs, seconds)
