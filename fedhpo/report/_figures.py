"""Thin Plotly renderers: one figure from one builder's plain data, no study access."""

from __future__ import annotations

import html
import math
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from fedhpo.report._data import (
    ClientsData,
    ComparisonData,
    CurvesData,
    FidelityData,
    HistoryData,
    ParetoData,
)
from fedhpo.report._param_data import ContourData, ImportanceData, ParamsData, ParamSpec

BLUE, ORANGE, GREY, RED, GREEN = "#3569b5", "#e8710a", "#9aa0a6", "#c5221f", "#188038"
PALETTE = ["#3569b5", "#e8710a", "#188038", "#c5221f", "#8e44ad", "#00838f", "#6d4c41"]
HEIGHT = 420
SLICE_COLS = 3


def label(text: Any) -> str:
    """Database text made safe for Plotly's pseudo-HTML labels (which decode &lt; &gt; &amp;
    but not &quot;, so quotes stay as they are)."""
    return html.escape(str(text), quote=False)


def _layout(fig: go.Figure, title: str, height: int = HEIGHT, **kwargs: Any) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01},
        template="plotly_white",
        height=height,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        legend={"orientation": "h", "y": -0.18},
        **kwargs,
    )
    return fig


def _better(direction: str) -> str:
    return "higher is better" if direction == "maximize" else "lower is better"


def history_figure(data: HistoryData) -> go.Figure:
    """Trial values as dots, the best so far as a step line, pruned trials faint."""
    fig = go.Figure()
    hover = "trial %{x}<br>%{y:.4g}<extra></extra>"
    if data.pruned_trials:
        fig.add_scatter(
            x=data.pruned_trials,
            y=data.pruned_values,
            mode="markers",
            name="pruned (last report)",
            marker={"color": GREY, "symbol": "x", "size": 6, "opacity": 0.6},
            hovertemplate=hover,
        )
    fig.add_scatter(
        x=data.trials,
        y=data.values,
        mode="markers",
        name="complete trial",
        marker={"color": BLUE, "size": 8},
        hovertemplate=hover,
    )
    fig.add_scatter(
        x=data.trials,
        y=data.best_so_far,
        mode="lines",
        name="best so far",
        line={"color": ORANGE, "width": 3, "shape": "hv"},
        hovertemplate=hover,
    )
    metric = label(data.metric)
    return _layout(
        fig,
        f"Optimization history ({metric}, {_better(data.direction)})",
        xaxis_title="trial",
        yaxis_title=metric,
    )


def _joined(curves: list[Any]) -> dict[str, list[Any]]:
    """Several curves as one trace: None between curves, the trial number on each point."""
    x: list[Any] = []
    y: list[Any] = []
    trial: list[Any] = []
    for c in curves:
        x += [*c.steps, None]
        y += [*c.values, None]
        trial += [c.trial] * len(c.steps) + [None]
    return {"x": x, "y": y, "customdata": trial}


def curves_figure(data: CurvesData) -> go.Figure:
    """Every trial's objective over rounds: pruned faint, complete plain, the best bold."""
    fig = go.Figure()
    hover = "trial %{customdata}<br>round %{x}<br>%{y:.4g}<extra></extra>"
    groups = [
        ("pruned", [c for c in data.curves if c.pruned], {"color": GREY, "width": 1}, 0.35),
        ("failed", [c for c in data.curves if c.state == "fail"], {"color": RED, "width": 1}, 0.5),
        (
            "complete",
            [c for c in data.curves if c.state == "complete" and not c.best],
            {"color": BLUE, "width": 1.5},
            0.6,
        ),
        ("best", [c for c in data.curves if c.best], {"color": ORANGE, "width": 4}, 1.0),
    ]
    for name, curves, line, opacity in groups:
        if not curves:
            continue
        if name == "best":
            name = f"best (trial {curves[0].trial})"
        fig.add_scatter(
            **_joined(curves),
            mode="lines",
            name=name,
            line=line,
            opacity=opacity,
            hovertemplate=hover,
            connectgaps=False,
        )
    metric = label(data.metric)
    return _layout(
        fig, f"Learning curves ({metric} per round)", xaxis_title="round", yaxis_title=metric
    )


def importance_figure(data: ImportanceData) -> go.Figure:
    """Horizontal bars, the most important parameter on top."""
    names = list(data.importances)[::-1]
    values = [data.importances[n] for n in names]
    fig = go.Figure(
        go.Bar(
            x=values,
            y=[label(n) for n in names],
            orientation="h",
            marker_color=BLUE,
            text=[f"{v:.2f}" for v in values],
            textposition="auto",
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    height = max(240, 60 + 34 * len(names))
    return _layout(
        fig, f"Parameter importances for {label(data.metric)}", height, xaxis_title="importance"
    )


def _log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    first, last = math.floor(lo), math.ceil(hi)
    decades = [float(d) for d in range(first, last + 1) if lo - 1e-9 <= d <= hi + 1e-9]
    return decades, [f"1e{int(d)}" for d in decades]


def _dimension(spec: ParamSpec, column: list[Any]) -> dict[str, Any]:
    """A parallel-coordinates axis: log10 for log params, choice index for categoricals."""
    dim: dict[str, Any] = {"label": label(spec.name)}
    if spec.kind == "categorical":
        dim["values"] = [spec.choices.index(v) for v in column]
        dim["tickvals"] = list(range(len(spec.choices)))
        dim["ticktext"] = [str(c) for c in spec.choices]  # plain SVG text: no markup
    elif spec.log:
        dim["values"] = [math.log10(v) for v in column]
        dim["tickvals"], dim["ticktext"] = _log_ticks(min(dim["values"]), max(dim["values"]))
        dim["label"] += " (log)"
    else:
        dim["values"] = list(column)
        ticks = _int_ticks(spec)
        if ticks:
            dim["tickvals"] = ticks
            dim["range"] = [ticks[0], ticks[-1]]
    return dim


def parallel_figure(data: ParamsData, order: list[str] | None = None) -> go.Figure:
    """The objective and every parameter set in all complete trials, one line per trial."""
    specs = {s.name: s for s in data.specs}
    names = [n for n in (order or []) if n in specs] + sorted(set(specs) - set(order or []))
    names = [n for n in names if all(v is not None for v in data.columns[n])]
    dims = [{"label": label(data.metric), "values": data.values}]
    dims += [_dimension(specs[n], data.columns[n]) for n in names]
    line = {
        "color": data.values,
        "colorscale": "Viridis",
        "reversescale": data.direction == "minimize",
        "showscale": True,
        "colorbar": {"title": {"text": label(data.metric)}},
    }
    fig = go.Figure(go.Parcoords(dimensions=dims, line=line))
    fig = _layout(fig, "Parallel coordinates (complete trials; brighter is better)")
    fig.update_layout(margin={"l": 80, "r": 80, "t": 90, "b": 30})
    return fig


def _slice_x(spec: ParamSpec, column: list[Any]) -> list[Any]:
    return [label(v) if spec.kind == "categorical" else v for v in column]


def _int_ticks(spec: ParamSpec) -> list[int] | None:
    """Every integer as a tick when an int parameter spans only a few values."""
    if spec.kind != "int" or spec.log or spec.low is None or spec.high is None:
        return None
    return list(range(int(spec.low), int(spec.high) + 1)) if spec.high - spec.low <= 12 else None


def _slice_axis(spec: ParamSpec) -> dict[str, Any]:
    if spec.log:
        return {"type": "log"}
    if spec.kind == "categorical":
        return {
            "type": "category",
            "categoryorder": "array",
            "categoryarray": [label(c) for c in spec.choices],
        }
    ticks = _int_ticks(spec)
    return {"tickvals": ticks} if ticks else {}


def slice_figure(data: ParamsData) -> go.Figure:
    """The objective against each parameter (colour: trial number), log axes where log."""
    n = len(data.specs)
    cols = min(n, SLICE_COLS)
    rows = math.ceil(n / cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[label(s.name) for s in data.specs],
        horizontal_spacing=0.07,
        vertical_spacing=0.5 / rows,
    )
    for i, spec in enumerate(data.specs):
        row, col = i // cols + 1, i % cols + 1
        pairs = [
            (x, v, t)
            for x, v, t in zip(data.columns[spec.name], data.values, data.trials, strict=True)
            if x is not None
        ]
        fig.add_scatter(
            x=_slice_x(spec, [p[0] for p in pairs]),
            y=[p[1] for p in pairs],
            customdata=[p[2] for p in pairs],
            mode="markers",
            showlegend=False,
            marker={
                "color": [p[2] for p in pairs],
                "colorscale": "Blues",
                "cmin": 0,
                "cmax": max(data.trials, default=1),
                "size": 8,
                "line": {"color": "#333", "width": 0.5},
            },
            hovertemplate="trial %{customdata}<br>%{x}<br>%{y:.4g}<extra></extra>",
            row=row,
            col=col,
        )
        fig.update_xaxes(**_slice_axis(spec), row=row, col=col)
        if col == 1:
            fig.update_yaxes(title_text=label(data.metric), row=row, col=col)
    return _layout(fig, "Slice plots (colour: trial number, darker is later)", 80 + 300 * rows)


def _contour_axis(spec: ParamSpec) -> dict[str, Any]:
    axis: dict[str, Any] = {"title": {"text": label(spec.name) + (" (log)" if spec.log else "")}}
    if spec.log:
        axis["type"] = "log"
    elif spec.kind == "categorical":
        axis["tickvals"] = list(range(len(spec.choices)))
        axis["ticktext"] = [label(c) for c in spec.choices]
    return axis


def contour_figure(data: ContourData) -> go.Figure:
    """Interpolated objective over the two most important parameters, trials as dots."""
    assert data.x is not None and data.y is not None, "render only drawable contour data"
    fig = go.Figure()
    fig.add_contour(
        x=data.grid_x,
        y=data.grid_y,
        z=data.z,
        colorscale="Viridis",
        reversescale=data.direction == "minimize",
        contours={"coloring": "heatmap"},
        colorbar={"title": {"text": label(data.metric)}},
        hoverinfo="skip",
    )
    fig.add_scatter(
        x=data.points_x,
        y=data.points_y,
        customdata=data.trials,
        mode="markers",
        name="complete trial",
        showlegend=False,
        marker={"color": "white", "size": 8, "line": {"color": "black", "width": 1}},
        text=[f"{v:.4g}" for v in data.points_value],
        hovertemplate="trial %{customdata}<br>%{x:.4g}, %{y:.4g}<br>%{text}<extra></extra>",
    )
    title = f"Contour of {label(data.metric)} over the two most important parameters"
    fig = _layout(fig, title, 480)
    fig.update_layout(xaxis=_contour_axis(data.x), yaxis=_contour_axis(data.y))
    return fig


def fidelity_figure(data: FidelityData) -> go.Figure:
    """Promoted configs: low-fidelity score (x) vs. full-fidelity mean +- std (y)."""
    everything = data.low_fidelity + [m + s for m, s in zip(data.mean, data.std, strict=True)]
    everything += [m - s for m, s in zip(data.mean, data.std, strict=True)]
    lo, hi = min(everything), max(everything)
    fig = go.Figure()
    fig.add_scatter(
        x=[lo, hi],
        y=[lo, hi],
        mode="lines",
        name="equal",
        hoverinfo="skip",
        line={"color": GREY, "dash": "dot"},
    )
    fig.add_scatter(
        x=data.low_fidelity,
        y=data.mean,
        mode="markers+text",
        name="promoted config",
        error_y={"type": "data", "array": data.std, "visible": True, "color": BLUE},
        marker={"color": BLUE, "size": 10},
        text=[f"#{t}" for t in data.trials],
        textposition="middle right",
        customdata=data.trials,
        hovertemplate="trial %{customdata}<br>low %{x:.4g}<br>full %{y:.4g}<extra></extra>",
    )
    rho = "n/a" if data.spearman is None else f"{data.spearman:.2f}"
    metric = label(data.metric)
    return _layout(
        fig,
        f"Fidelity check: Spearman rank correlation {rho}",
        xaxis_title=f"{metric} at low fidelity (tuning)",
        yaxis_title=f"{metric} at full fidelity (mean ± std over seeds)",
    )


def clients_figure(data: ClientsData) -> go.Figure:
    """A box plot above a histogram of the per-client accuracies."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.25, 0.75])
    fig.add_box(
        x=data.accuracies,
        name="clients",
        boxpoints="all",
        jitter=0.4,
        marker_color=BLUE,
        showlegend=False,
        row=1,
        col=1,
    )
    fig.add_histogram(
        x=data.accuracies, nbinsx=20, marker_color=BLUE, showlegend=False, row=2, col=1
    )
    fig.update_xaxes(title_text="client accuracy", row=2, col=1)
    fig.update_yaxes(title_text="clients", row=2, col=1)
    fig.update_yaxes(showticklabels=False, row=1, col=1)
    which = "promoted winner" if data.promoted else "best trial"
    return _layout(fig, f"Per-client accuracy of the {which}, trial {data.trial}")


def pareto_figure(data: ParetoData) -> go.Figure:
    """First two objectives of every complete trial, the Pareto front highlighted."""
    fig = go.Figure()
    hover = "trial %{customdata}<br>%{x:.4g}, %{y:.4g}<extra></extra>"
    fig.add_scatter(
        x=data.x,
        y=data.y,
        customdata=data.trials,
        mode="markers",
        name="complete trial",
        marker={"color": GREY, "size": 8},
        hovertemplate=hover,
    )
    fig.add_scatter(
        x=data.front_x,
        y=data.front_y,
        customdata=data.front_trials,
        mode="lines+markers",
        name="Pareto front",
        marker={"color": RED, "size": 11},
        line={"color": RED, "shape": "hv", "width": 1.5},
        hovertemplate=hover,
    )
    (mx, my), (dx, dy) = data.metrics, data.directions
    return _layout(
        fig,
        "Pareto front",
        xaxis_title=f"{label(mx)} ({_better(dx)})",
        yaxis_title=f"{label(my)} ({_better(dy)})",
    )


def comparison_figures(data: ComparisonData) -> tuple[go.Figure, go.Figure]:
    """Best-so-far of each study against finished-trial count and cumulative wall time."""
    by_count, by_time = go.Figure(), go.Figure()
    for i, s in enumerate(data.series):
        name = f"{label(s.study)} ({label(s.metric)}, {s.direction[:3]})"
        line = {"color": PALETTE[i % len(PALETTE)], "width": 2.5, "shape": "hv"}
        hover = "%{x:.4g}<br>best %{y:.4g}"  # Plotly adds the trace name
        # a line through one point draws nothing: a marker shows it
        drawn = sum(b is not None for b in s.best_so_far)
        mode = "lines" if drawn > 1 else "lines+markers"
        by_count.add_scatter(
            x=s.trial_count,
            y=s.best_so_far,
            mode=mode,
            name=name,
            line=line,
            hovertemplate=hover,
        )
        by_time.add_scatter(
            x=s.cumulative_seconds,
            y=s.best_so_far,
            mode=mode,
            name=name,
            line=line,
            hovertemplate=hover,
        )
    _layout(
        by_count, "Best so far vs. trials", xaxis_title="finished trials", yaxis_title="best so far"
    )
    _layout(
        by_time,
        "Best so far vs. compute",
        xaxis_title="cumulative trial wall time (s)",
        yaxis_title="best so far",
    )
    return by_count, by_time
