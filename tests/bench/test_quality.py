"""The quality benchmark's machinery on a tiny problem: the ground-truth cache, replayed
trials, compute accounting and regret arithmetic (quality itself is the benchmark's job)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fedhpo.bench.quality import (
    PROBLEMS,
    Outcome,
    Problem,
    Replay,
    _truth,
    cache_path,
    ceiling,
    grid_best,
    load_or_compute,
    noise_floor,
    regret,
    run_problem,
    run_strategy,
    summarize,
)
from fedhpo.sim.engine import run_simulation
from fedhpo.space import CategoricalParam, IntParam, load_space
from fedhpo.tune import full_config
from tests.helpers import BASE

SPACE = """\
base: base.yaml
objective: {metric: val_accuracy}
params:
  client.lr: {type: float, low: 1.0e-3, high: 1.0, log: true}
  client.mu: {type: float, low: 0.0, high: 1.0}
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Problem, Path]:
    root = tmp_path_factory.mktemp("quality")
    (root / "base.yaml").write_text(BASE)
    (root / "space.yaml").write_text(SPACE)
    grid = {"client.lr": [0.003, 0.05, 1.0], "client.mu": [0.0, 1.0]}
    return Problem("tiny", str(root / "space.yaml"), grid, (0, 1), (2,), budget=4), root


@pytest.fixture(scope="module")
def table(tiny):
    problem, root = tiny
    return load_or_compute(problem, root / "cache", jobs=1, log=lambda _: None)


def test_cache_is_reused_until_the_problem_changes(tiny, table, monkeypatch) -> None:
    problem, root = tiny
    assert cache_path(problem, root / "cache").is_file()

    def no(*_a, **_k):
        raise AssertionError("an unchanged problem must not be recomputed")

    monkeypatch.setattr(_truth, "compute_table", no)
    again = load_or_compute(problem, root / "cache", log=lambda _: None)
    assert again.runs == table.runs
    changed = Problem("tiny", problem.space_file, {**problem.grid, "client.mu": [0.0, 0.5]})
    assert changed.key() != problem.key()
    with pytest.raises(AssertionError, match="must not be recomputed"):
        load_or_compute(changed, root / "cache", log=lambda _: None)


def test_table_holds_every_point_and_seed(tiny, table) -> None:
    problem, _ = tiny
    assert len(table.points) == 6
    for point in table.points:
        for seed in problem.seeds:
            run = table.run(point, seed)
            assert len(run["steps"]) == len(run["val_accuracy"]) <= 12


def test_replay_is_the_real_run_and_its_prefixes(tiny, table) -> None:
    problem, _ = tiny
    space = load_space(problem.space_file)
    replay = Replay(table, space)
    config = full_config(space.base, {"client.lr": 0.05, "client.mu": 1.0}, 1)
    real = run_simulation(config)
    replayed = replay(config)
    assert [r.val_accuracy for r in replayed.rounds] == [r.val_accuracy for r in real.rounds]
    assert replayed.steps == real.steps and replayed.test_accuracy == real.test_accuracy
    short = replay(config.with_values({"federation.rounds": 5}))
    assert short.rounds == replayed.rounds[:5] and math.isnan(short.test_accuracy)
    # off-grid values snap to the nearest point (log scale for lr)
    assert replay.snap({"client.lr": 0.02, "client.mu": 0.9}) == {
        "client.lr": 0.05,
        "client.mu": 1.0,
    }


def test_compute_is_counted_in_client_steps(tiny, table) -> None:
    problem, _ = tiny
    space = load_space(problem.space_file)
    full = sum(table.run(Replay(table, space).point_of(space.base), 0)["steps"])
    out = run_strategy("random_full", problem, table, seed=0)
    # full runs until the budget is spent: the last one may overshoot by at most one run
    assert (
        problem.budget
        <= out.full_runs
        < problem.budget + max(sum(table.run(p, 0)["steps"]) for p in table.points) / full
    )
    default = run_strategy("default", problem, table, seed=0)
    assert default.full_runs > 0 and default.trials > 0
    assert default.history[-1][0] <= default.full_runs  # promotion re-runs come on top
    base = run_strategy("base", problem, table, seed=0)
    assert base.full_runs == 0 and base.point == {"client.lr": 0.05, "client.mu": 0.0}


def test_regret_and_the_summary_row() -> None:
    def outcome(strategy: str, seed: int, truth: float, runs: float) -> Outcome:
        return Outcome(strategy, seed, {}, truth, runs, 3, [])

    best = 0.9
    mine = [outcome("a", 0, 0.9, 10), outcome("a", 1, 0.85, 12), outcome("a", 2, 0.80, 8)]
    rand = [outcome("r", 0, 0.88, 10), outcome("r", 1, 0.85, 10), outcome("r", 2, 0.82, 10)]
    assert regret(best, mine[1]) == pytest.approx(0.05)
    row = summarize("p", best, 100.0, mine, rand)
    assert row.mean_regret == pytest.approx((0 + 0.05 + 0.10) / 3)
    assert row.worst_regret == pytest.approx(0.10)
    assert row.mean_full_runs == pytest.approx(10) and row.grid_share == pytest.approx(0.1)
    assert (row.wins, row.ties) == (1, 1)


def test_grid_best_is_the_best_ground_truth(tiny, table) -> None:
    problem, _ = tiny
    point, value = grid_best(table, problem)
    assert value == max(table.truth(p, problem.truth_seeds) for p in table.points)
    assert table.truth(point, problem.truth_seeds) == value


def test_the_noise_floor_is_the_regret_of_the_best_point_on_the_search_seeds(tiny, table) -> None:
    problem, _ = tiny
    _, best = grid_best(table, problem)
    floor = noise_floor(table, problem)
    assert set(floor) == {1, 2}
    for k, seen in ((1, (0,)), (2, (0, 1))):
        values = [table.truth(p, seen) for p in table.points]
        chosen = table.points[values.index(max(values))]
        assert floor[k] == pytest.approx(best - table.truth(chosen, problem.truth_seeds))
        assert floor[k] >= 0


def test_the_ceiling_counts_the_perfect_searchs_wins_and_ties_against_random() -> None:
    def outcome(seed: int, truth: float) -> Outcome:
        return Outcome("random_full", seed, {}, truth, 10.0, 3, [])

    best = 0.9
    rand = [outcome(0, 0.9), outcome(1, 0.87), outcome(2, 0.89), outcome(3, 0.80)]
    # the point best on 1 seed has 0.01 of regret: it loses to seed 0, ties seed 2, beats 1, 3;
    # the point best on 2 seeds is the grid's best: it ties seed 0 and beats the rest
    assert ceiling({1: 0.01, 2: 0.0}, best, rand) == {1: (2, 1, 4), 2: (3, 1, 4)}


def test_a_problem_report_carries_the_ceiling_against_random_search(tiny, table) -> None:
    problem, _ = tiny
    report = run_problem(problem, table, [0, 1], ["random_full", "base"], log=lambda _: None)
    _, best = grid_best(table, problem)
    rand = [o for o in report.outcomes if o.strategy == "random_full"]
    assert report.ceiling == ceiling(noise_floor(table, problem), best, rand)
    assert set(report.ceiling) == {1, 2} and all(n == 2 for _, _, n in report.ceiling.values())
    no_random = run_problem(problem, table, [0], ["base"], log=lambda _: None)
    assert no_random.ceiling == {}


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_shipped_grids_hold_every_value_of_discrete_params(name: str) -> None:
    """Replay snaps a config to the nearest grid point; a discrete value missing from the grid
    has no nearest one (``local_epochs: 3`` is as near 2 as 4) and would be scored as
    whichever comes first."""
    problem = PROBLEMS[name]
    for param in problem.space().params:
        if isinstance(param, CategoricalParam):
            wanted = list(param.choices)
        elif isinstance(param, IntParam):
            wanted = list(range(param.low, param.high + 1, param.step))
        else:
            continue
        assert sorted(problem.grid[param.name], key=str) == sorted(wanted, key=str), param.name
