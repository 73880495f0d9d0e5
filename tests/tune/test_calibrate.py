"""The fidelity check: rank correlations of short runs with full runs, and the rung chosen."""

from __future__ import annotations

import pytest

from fedhpo.space import load_space
from fedhpo.tune._calibrate import candidate_rungs, choose, design, spearman


def test_spearman() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_a_fidelity_that_reverses_the_ranking_is_not_chosen() -> None:
    # four configs over 27 rounds: until round 9 the aggressive ones lead, then they fall
    # behind (the short-runs-favour-large-learning-rates trap); from round 9 on the
    # ranking is the final one
    def curve(early: float, late: float) -> list[float]:
        return [early] * 8 + [late] * 19

    curves = [curve(0.9, 0.60), curve(0.8, 0.70), curve(0.7, 0.80), curve(0.6, 0.85)]
    rungs = candidate_rungs(27)
    assert rungs == [3, 9]
    rho, chosen = choose(curves, rungs, maximize=True)
    assert rho[0] == pytest.approx(-1.0)
    assert rho[1] == pytest.approx(1.0) and chosen == 9


def test_the_first_rung_is_never_a_single_round_of_a_short_run() -> None:
    assert candidate_rungs(30) == [3, 10]  # workload W: not round 1
    assert candidate_rungs(200, every=10) == [20, 60]  # on reporting rounds
    assert candidate_rungs(5) == [1, 2]  # a run this short has no better choice


def test_no_rung_qualifies_and_diverged_runs_rank_last() -> None:
    curves = [[0.9, 0.1, 0.1], [0.1, 0.9, 0.9], [0.5]]  # the last one diverged in round 2
    rho, chosen = choose(curves, [1], maximize=True)
    assert chosen is None and rho[0] is not None and rho[0] < 0.8


def test_design_fills_the_space_and_respects_conditions(tmp_path) -> None:
    (tmp_path / "s.yaml").write_text(
        "params:\n"
        "  server.optimizer: {type: categorical, choices: [sgd, adam]}\n"
        "  server.beta1: {type: float, low: 0.5, high: 0.9, when: {server.optimizer: adam}}\n"
        "  client.lr: {type: float, low: 1.0e-3, high: 1.0, log: true}\n"
    )
    space = load_space(tmp_path / "s.yaml")
    points = design(space, 4, seed=0)
    assert len(points) == 4
    lrs = sorted(p["client.lr"] for p in points)
    # one per quarter of the log range
    assert [int((__import__("math").log10(v) + 3) // 0.75) for v in lrs] == [0, 1, 2, 3]
    for p in points:
        assert ("server.beta1" in p) == (p["server.optimizer"] == "adam")
    assert design(space, 4, seed=0) == points


def test_one_adjacent_swap_among_four_is_exactly_the_threshold() -> None:
    # Spearman of one swapped neighbour pair among 4 is 0.8 (float: 0.7999999999999999)
    curves = [[0.1, 0.1], [0.2, 0.2], [0.4, 0.3], [0.3, 0.4]]
    rho, chosen = choose(curves, [1], maximize=True)
    assert rho[0] == pytest.approx(0.8) and chosen == 1
