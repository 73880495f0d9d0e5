"""Learning curves in simulated time: the data builder (pure) and its thin Plotly renderer.

Trials record each server update's simulated time (``sim_seconds`` in their curves). When
any trial of a study has it, the report shows a metric against simulated seconds: the
primary objective if it is recorded per round, else validation accuracy (e.g. for a study
of ``time_to_accuracy``, whose value is one number per trial).
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna
import plotly.graph_objects as go
from optuna.trial import TrialState

from fedhpo.report._data import best_trial_number, finite, primary
from fedhpo.report._figures import BLUE, GREY, ORANGE, _layout, label
from fedhpo.store import records as rec

__all__ = ["TimeCurve", "TimeCurvesData", "time_curves_data", "time_curves_figure"]


@dataclass(frozen=True)
class TimeCurve:
    """One trial's metric against the simulated time of its server updates."""

    trial: int
    state: str
    seconds: list[float]
    values: list[float]
    best: bool


@dataclass(frozen=True)
class TimeCurvesData:
    metric: str
    curves: list[TimeCurve]


def time_curves_data(study: optuna.Study) -> TimeCurvesData:
    """Every finished trial's metric over simulated seconds (trials without time left out)."""
    objective, _ = primary(study)
    best = best_trial_number(study)
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    recorded = [t.user_attrs.get(rec.CURVES) or {} for t in trials]
    metric = objective if any(objective in c for c in recorded) else "val_accuracy"
    curves = []
    for trial, curve in zip(trials, recorded, strict=True):
        times, values = curve.get("sim_seconds") or [], curve.get(metric) or []
        pairs = [(s, v) for s, v in zip(times, values, strict=False) if finite(s) and finite(v)]
        if not pairs or not any(s > 0 for s, _ in pairs):
            continue
        state = "pruned" if trial.state == TrialState.PRUNED else trial.state.name.lower()
        curves.append(
            TimeCurve(
                trial=trial.number,
                state=state,
                seconds=[float(s) for s, _ in pairs],
                values=[float(v) for _, v in pairs],
                best=trial.number == best,
            )
        )
    return TimeCurvesData(metric=metric, curves=curves)


def time_curves_figure(data: TimeCurvesData) -> go.Figure:
    """The metric against simulated seconds: pruned faint, complete plain, the best bold."""
    fig = go.Figure()
    hover = "trial %{customdata}<br>%{x:.4g} simulated s<br>%{y:.4g}<extra></extra>"
    groups = [
        ("pruned", [c for c in data.curves if c.state != "complete"], GREY, 1, 0.35),
        (
            "complete",
            [c for c in data.curves if c.state == "complete" and not c.best],
            BLUE,
            1.5,
            0.6,
        ),
        ("best", [c for c in data.curves if c.best], ORANGE, 4, 1.0),
    ]
    for name, curves, color, width, opacity in groups:
        if not curves:
            continue
        x: list[float | None] = []
        y: list[float | None] = []
        trial: list[int | None] = []
        for c in curves:
            x += [*c.seconds, None]
            y += [*c.values, None]
            trial += [c.trial] * len(c.seconds) + [None]
        fig.add_scatter(
            x=x,
            y=y,
            customdata=trial,
            mode="lines",
            name=f"best (trial {curves[0].trial})" if name == "best" else name,
            line={"color": color, "width": width},
            opacity=opacity,
            hovertemplate=hover,
            connectgaps=False,
        )
    metric = label(data.metric)
    return _layout(
        fig,
        f"Learning curves in simulated time ({metric})",
        xaxis_title="simulated seconds",
        yaxis_title=metric,
    )
