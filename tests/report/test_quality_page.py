"""The quality benchmark's page: regret curves are built from the JSON, then drawn."""

from __future__ import annotations

import pytest

from fedhpo.report import quality_html, regret_curves, write_quality

PROBLEM = {
    "problem": "p",
    "description": "a problem",
    "points": 3,
    "truth_seeds": [2, 3],
    "best": 0.9,
    "best_point": {"client.lr": 0.1},
    "noise_floor": {"1": 0.0092, "2": 0.0037},
    "ceiling": {"1": [1, 0, 2], "2": [2, 0, 2]},
    "rows": [
        {
            "problem": "p",
            "strategy": "a",
            "seeds": 2,
            "mean_regret": 0.01,
            "worst_regret": 0.02,
            "tried_regret": 0.0042,
            "mean_full_runs": 10.0,
            "grid_share": 0.1,
            "wins": 1,
            "ties": 0,
        },
    ],  # fmt: skip
    "outcomes": [
        {
            "strategy": "a",
            "seed": 0,
            "truth": 0.88,
            "full_runs": 10.0,
            "history": [[1.0, 0.80], [4.0, 0.88]],
        },
        {
            "strategy": "a",
            "seed": 1,
            "truth": 0.90,
            "full_runs": 12.0,
            "history": [[2.0, 0.85], [8.0, 0.90]],
        },
    ],  # fmt: skip
}


def test_regret_curves_average_the_incumbents_over_seeds() -> None:
    (curve,) = regret_curves(PROBLEM)
    assert curve.strategy == "a"
    assert curve.final_compute == pytest.approx(11.0)
    assert curve.final_regret == pytest.approx(100 * (0.02 + 0.0) / 2)
    at = dict(zip(curve.compute, curve.regret, strict=True))
    assert at[0.0] != at[0.0]  # no incumbent yet: nan
    assert at[2.0] == pytest.approx((10 + 5) / 2)  # seed 0 at 0.80, seed 1 at 0.85
    assert at[8.0] == pytest.approx((2 + 0) / 2)


def test_the_page_has_the_table_and_a_figure_per_problem(tmp_path) -> None:
    text = quality_html({"problems": [PROBLEM]})
    assert "mean regret pp" in text and 'id="fig-p"' in text
    assert "best tried pp" in text and "<td>2</td><td>0.42</td><td>10</td>" in text
    older = {
        **PROBLEM,
        "rows": [{k: v for k, v in PROBLEM["rows"][0].items() if k != "tried_regret"}],
    }
    # JSON written before the column: an empty cell
    assert '<td>2</td><td class="text"></td><td>10</td>' in quality_html({"problems": [older]})
    assert "0.92 pp on 1 seed(s), 0.37 pp on 2 seed(s)" in text
    assert "the most any strategy can get: 1 of 2 on 1 seed(s) (ties 0), 2 of 2" in text
    index = write_quality({"problems": [PROBLEM]}, tmp_path / "q")
    assert index.read_text() == text and (tmp_path / "q" / "plotly.min.js").is_file()
