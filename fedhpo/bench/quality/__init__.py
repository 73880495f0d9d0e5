"""``fedhpo bench --workload quality``: how good are the configs each strategy hands back?

Problems with ground truth (an exhaustive full-fidelity grid, cached), strategies replayed
against it at an equal compute budget with several tuner seeds, and each strategy scored by
the ground truth of the config it recommends (regret = grid best - that).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedhpo.bench.quality._problems import PROBLEMS, Problem, point_key
from fedhpo.bench.quality._replay import Replay
from fedhpo.bench.quality._score import (
    Row,
    ceiling,
    grid_best,
    grid_full_runs,
    noise_floor,
    regret,
    summarize,
)
from fedhpo.bench.quality._strategies import STRATEGIES, VARIANTS, Outcome, run_strategy
from fedhpo.bench.quality._truth import Table, cache_path, load_or_compute, read_cache, run_key

__all__ = [
    "PROBLEMS",
    "STRATEGIES",
    "VARIANTS",
    "Outcome",
    "Problem",
    "QualityReport",
    "Replay",
    "Row",
    "Table",
    "cache_path",
    "ceiling",
    "grid_best",
    "load_or_compute",
    "noise_floor",
    "point_key",
    "regret",
    "read_cache",
    "run_key",
    "run_problem",
    "run_quality",
    "run_strategy",
    "summarize",
]

Log = Callable[[str], None]


@dataclass(frozen=True)
class ProblemReport:
    """One problem's ground truth and every strategy run on it."""

    problem: str
    description: str
    points: int
    truth_seeds: list[int]
    grid_seconds: float
    grid_full_runs: float
    best_point: dict[str, Any]
    best: float
    budget: float
    noise_floor: dict[int, float]
    """Regret of the grid point best on the first k search seeds, by k (see
    :func:`noise_floor`)."""
    ceiling: dict[int, tuple[int, int, int]]
    """Wins, ties and tuner seeds against random_full of the perfect search behind each noise floor
    entry (see :func:`ceiling`); empty without random_full."""
    outcomes: list[Outcome]
    rows: list[Row]


@dataclass(frozen=True)
class QualityReport:
    problems: list[ProblemReport] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"problems": [dataclasses.asdict(p) for p in self.problems]}


def run_problem(
    problem: Problem,
    table: Table,
    seeds: Sequence[int],
    strategies: Sequence[str],
    log: Log = print,
) -> ProblemReport:
    """Every strategy with every tuner seed on one problem."""
    space = problem.space()
    replay = Replay(table, space)
    full_steps = sum(table.run(replay.point_of(space.base), space.base.seed)["steps"])
    best_point, best = grid_best(table, problem)
    runs = grid_full_runs(table, problem, full_steps)
    outcomes: dict[str, list[Outcome]] = {}
    for name in strategies:
        outcomes[name] = [run_strategy(name, problem, table, s, space) for s in seeds]
        mean = sum(regret(best, o) for o in outcomes[name]) / len(seeds)
        log(f"  {problem.name} {name}: mean regret {100 * mean:.2f} pp")
    baseline = outcomes.get("random_full") or next(iter(outcomes.values()))
    rows = [summarize(problem.name, best, runs, o, baseline) for o in outcomes.values()]
    floor = noise_floor(table, problem)
    top = ceiling(floor, best, outcomes["random_full"]) if "random_full" in outcomes else {}
    return ProblemReport(
        problem.name,
        problem.description,
        len(table.points),
        list(problem.truth_seeds),
        table.seconds,
        runs,
        best_point,
        best,
        problem.budget,
        floor,
        top,
        [o for group in outcomes.values() for o in group],
        rows,
    )


def run_quality(
    problems: Sequence[str] = tuple(PROBLEMS),
    seeds: Sequence[int] = range(5),
    strategies: Sequence[str] = tuple(STRATEGIES),
    cache_dir: str | Path = "runs/bench/quality",
    jobs: int = 2,
    log: Log = print,
    truth_seeds: Sequence[int] | None = None,
    budget: float | None = None,
) -> QualityReport:
    """Ground truth (cached) and every strategy, for each problem (scored on ``truth_seeds``
    instead of the problem's own when given; at ``budget`` full runs instead of the
    problem's B when given: the ground truth does not depend on it)."""
    reports = []
    for name in problems:
        problem = PROBLEMS[name]
        if truth_seeds is not None:
            problem = problem.with_truth_seeds(truth_seeds)
        if budget is not None:
            problem = problem.with_budget(budget)
        table = load_or_compute(problem, Path(cache_dir), jobs, log)
        reports.append(run_problem(problem, table, list(seeds), list(strategies), log))
    return QualityReport(reports)
