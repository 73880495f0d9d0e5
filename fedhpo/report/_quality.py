"""The quality benchmark's page: regret against compute per problem, from its JSON (pure data
first, then a thin Plotly renderer), so ``fedhpo bench --workload quality --out DIR`` draws it."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from fedhpo.report._data import TableData
from fedhpo.report._html import Section, figure_section, page, table
from fedhpo.report._report import write_page


@dataclass(frozen=True)
class RegretCurve:
    """One strategy's mean regret (pp) of its incumbent over tuner seeds, by compute."""

    strategy: str
    compute: list[float]
    regret: list[float]
    final_compute: float
    final_regret: float
    """After promotion: the regret of what the strategy recommends."""


def _step_mean(histories: Sequence[Sequence[Sequence[float]]], grid: list[float]) -> list[float]:
    """Mean over runs of each run's last value at or before each grid compute."""
    out = []
    for x in grid:
        values = []
        for h in histories:
            seen = [v for c, v in h if c <= x + 1e-9]
            if seen:
                values.append(seen[-1])
        out.append(statistics.fmean(values) if values else float("nan"))
    return out


def regret_curves(problem: Mapping[str, Any]) -> list[RegretCurve]:
    """A problem's curves from the benchmark JSON (``QualityReport.to_json()['problems'][i]``)."""
    best = float(problem["best"])
    by: dict[str, list[Mapping[str, Any]]] = {}
    for o in problem["outcomes"]:
        by.setdefault(o["strategy"], []).append(o)
    curves = []
    for name, runs in by.items():
        histories = [[(c, 100 * (best - v)) for c, v in o["history"]] for o in runs]
        top = max((h[-1][0] for h in histories if h), default=0.0)
        grid = [top * i / 40 for i in range(41)] if top else [0.0]
        curves.append(
            RegretCurve(
                name,
                grid,
                _step_mean(histories, grid),
                statistics.fmean(o["full_runs"] for o in runs),
                statistics.fmean(100 * (best - o["truth"]) for o in runs),
            )
        )
    return curves


def regret_figure(title: str, curves: Sequence[RegretCurve]) -> go.Figure:
    """Mean regret of each strategy's incumbent against compute, and where it ends."""
    fig = go.Figure()
    for c in curves:
        fig.add_trace(go.Scatter(x=c.compute, y=c.regret, mode="lines", name=c.strategy))
        fig.add_trace(
            go.Scatter(
                x=[c.final_compute],
                y=[c.final_regret],
                mode="markers",
                marker={"size": 11, "symbol": "star"},
                name=f"{c.strategy}: recommended",
            )
        )
    fig.update_layout(
        title=title,
        xaxis_title="compute (full-run equivalents)",
        yaxis_title="regret (pp of the objective)",
        height=420,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
    )
    return fig


def quality_html(report: Mapping[str, Any]) -> str:
    """The whole page: the summary table, then one figure per problem."""
    columns = ["problem", "strategy", "seeds", "mean regret pp", "worst regret pp",
               "best tried pp", "full runs", "share of grid", "wins vs random_full",
               "ties"]  # fmt: skip
    rows = [
        [
            r["problem"],
            r["strategy"],
            r["seeds"],
            round(100 * r["mean_regret"], 2),
            round(100 * r["worst_regret"], 2),
            _pp(r.get("tried_regret")),  # absent from JSON written before 2026-12-07
            round(r["mean_full_runs"], 2),
            round(r["grid_share"], 3),
            r["wins"],
            r["ties"],
        ]  # fmt: skip
        for p in report["problems"]
        for r in p["rows"]
    ]
    sections = [Section("summary", "Summary", table(TableData(columns, rows)))]
    for p in report["problems"]:
        intro = (
            f"{p['description']}. Grid: {p['points']} points, truth over seeds "
            f"{p['truth_seeds']}; best {p['best']:.4f} at {p['best_point']}."
        )
        floor = p.get("noise_floor") or {}
        if floor:
            parts = [f"{100 * v:.2f} pp on {k} seed(s)" for k, v in floor.items()]
            intro += (
                " Noise floor (regret of the grid point that is best on the search seeds): "
                + ", ".join(parts)
                + "."
            )
        top = p.get("ceiling") or {}
        if top:
            parts = [f"{w} of {n} on {k} seed(s) (ties {t})" for k, (w, t, n) in top.items()]
            intro += (
                " That point's wins against random search at full fidelity, the most any "
                "strategy can get: " + ", ".join(parts) + "."
            )
        fig = regret_figure(p["problem"], regret_curves(p))
        sections.append(figure_section(p["problem"], p["problem"], fig, intro))
    return page("fedhpo tuning quality", sections, subtitle="regret against compute")


def write_quality(report: Mapping[str, Any], out_dir: str | Path) -> Path:
    """Write the benchmark page (``index.html`` and a local ``plotly.min.js``)."""
    return write_page(out_dir, quality_html(report))


def _pp(value: float | None) -> float | str:
    return "" if value is None else round(100 * value, 2)
