"""Regret arithmetic and the summary table of the quality benchmark (pure functions)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fedhpo.bench.quality._problems import Problem
from fedhpo.bench.quality._strategies import Outcome
from fedhpo.bench.quality._truth import Table


def grid_best(table: Table, problem: Problem) -> tuple[dict[str, Any], float]:
    """The grid's best point and its ground truth (maximizing the table's metric)."""
    scored = [(table.truth(p, problem.truth_seeds), i) for i, p in enumerate(table.points)]
    value, index = max(scored)
    return table.points[index], value


def noise_floor(table: Table, problem: Problem) -> dict[int, float]:
    """Regret of a perfect search that sees only the search seeds: for k = 1, 2, ... the
    regret of the grid point whose mean over the first k search seeds is best.

    What no strategy can beat on average by choosing from single-seed (k = 1) full runs:
    the rest is seed noise, which only more seeds per config remove.
    """
    _, best = grid_best(table, problem)
    out = {}
    for k in range(1, len(problem.search_seeds) + 1):
        seen = problem.search_seeds[:k]
        chosen = max(table.points, key=lambda p: table.truth(p, seen))
        out[k] = best - table.truth(chosen, problem.truth_seeds)
    return out


def ceiling(
    floor: dict[int, float], best: float, baseline: Sequence[Outcome]
) -> dict[int, tuple[int, int, int]]:
    """Wins, ties and tuner seeds against ``baseline`` (random_full, one outcome per tuner seed) of the
    perfect search behind each :func:`noise_floor` entry: the most wins any strategy can get
    by choosing from runs on those search seeds (random search sometimes lands on the best
    point too, and a tie is not a win)."""
    regrets = [regret(best, o) for o in baseline]
    out = {}
    for k, floor_regret in floor.items():
        wins = sum(1 for r in regrets if floor_regret < r - 1e-12)
        ties = sum(1 for r in regrets if abs(floor_regret - r) <= 1e-12)
        out[k] = (wins, ties, len(regrets))
    return out


def grid_full_runs(table: Table, problem: Problem, full_steps: int) -> float:
    """The grid's compute (every point at every ground-truth seed) in full-run equivalents."""
    steps = sum(sum(table.run(p, s)["steps"]) for p in table.points for s in problem.truth_seeds)
    return steps / full_steps


def regret(best: float, outcome: Outcome) -> float:
    """How far the recommended config's ground truth falls short of the grid's best."""
    return best - outcome.truth


@dataclass(frozen=True)
class Row:
    """One (problem, strategy) line of the summary."""

    problem: str
    strategy: str
    seeds: int
    mean_regret: float
    worst_regret: float
    tried_regret: float
    """Mean regret of the best config each search ran at all (pruned trials included): a
    perfect choice among its own trials; the rest of ``mean_regret`` is lost in choosing."""
    mean_full_runs: float
    grid_share: float
    """Mean compute as a share of the grid's compute."""
    wins: int
    """Tuner seeds on which the strategy's regret is below random_full's (same seed)."""
    ties: int


def summarize(
    problem: str,
    best: float,
    grid_runs: float,
    outcomes: Sequence[Outcome],
    baseline: Sequence[Outcome],
) -> Row:
    """The row of one strategy's ``outcomes`` against ``baseline`` (random_full, by seed)."""
    regrets = [regret(best, o) for o in outcomes]
    by_seed = {o.seed: regret(best, o) for o in baseline}
    wins = sum(1 for o, r in zip(outcomes, regrets, strict=True) if r < by_seed[o.seed] - 1e-12)
    ties = sum(
        1 for o, r in zip(outcomes, regrets, strict=True) if abs(r - by_seed[o.seed]) <= 1e-12
    )
    compute = statistics.fmean(o.full_runs for o in outcomes)
    return Row(
        problem,
        outcomes[0].strategy,
        len(outcomes),
        statistics.fmean(regrets),
        max(regrets),
        statistics.fmean(best - o.tried_truth for o in outcomes),
        compute,
        compute / grid_runs if grid_runs else 0.0,
        wins,
        ties,
    )
