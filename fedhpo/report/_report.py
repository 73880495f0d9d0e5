"""Report folders: build each section's data, draw it, assemble the page, copy plotly.js."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import optuna
import plotly.offline

from fedhpo._outputs import out_folder, writing_error
from fedhpo.report import _figures as figs
from fedhpo.report._data import (
    ComparisonData,
    TableData,
    clients_data,
    comparison_data,
    curves_data,
    fidelity_data,
    header_data,
    history_data,
    leaderboard_data,
    pareto_data,
)
from fedhpo.report._html import (
    PLOTLY_JS,
    Section,
    figure_section,
    header_section,
    leaderboard_section,
    note,
    page,
    table,
)
from fedhpo.report._param_data import contour_data, importance_data, params_data
from fedhpo.report._sim_time import time_curves_data, time_curves_figure
from fedhpo.store import records as rec

REPORTS_DIR = Path("reports")
MAX_FOLDER_NAME = 80
NO_COMPLETE = "No complete trial yet."


def safe_folder_name(name: str, fallback: str = "study") -> str:
    """A folder name made from ``name`` that cannot leave its parent: ASCII letters, digits,
    '.', '_' and '-' only, no '..', no leading dot or dash (``../../etc`` -> ``etc``)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name)
    slug = re.sub(r"\.{2,}", ".", slug).strip(".-_")
    return slug[:MAX_FOLDER_NAME].rstrip(".-_") or fallback


def default_out_dir(study_name: str) -> Path:
    """``reports/<safe study name>``."""
    return REPORTS_DIR / safe_folder_name(study_name)


def default_comparison_dir(study_names: Sequence[str]) -> Path:
    """``reports/compare-<a>-<b>...``."""
    parts = ["compare", *(safe_folder_name(name) for name in study_names)]
    return REPORTS_DIR / safe_folder_name("-".join(parts), "compare")


def _time_sections(study: optuna.Study) -> list[Section]:
    """Curves in simulated time, when trials recorded it (none for older studies)."""
    data = time_curves_data(study)
    if not data.curves:
        return []
    intro = (
        f"{data.metric} at each server update of every trial against the simulated time "
        "(client compute, transfers, waiting) it was reached at."
    )
    title = "Learning curves in simulated time"
    return [figure_section("sim-time", title, time_curves_figure(data), intro)]


def _insight_sections(study: optuna.Study) -> list[Section]:
    """History, curves, importances, parallel coordinates, slices and contour."""
    history = history_data(study)
    curves = curves_data(study)
    importance = importance_data(study)
    params = params_data(study)
    contour = contour_data(study, importance)
    metric = history.metric
    first = "" if len(study.directions) == 1 else " (the first objective)"
    has_params = bool(params.trials and params.specs)
    in_all = [s for s in params.specs if all(v is not None for v in params.columns[s.name])]
    no_params = NO_COMPLETE if not params.trials else "No parameters were searched."
    return [
        figure_section(
            "history",
            "Optimization history",
            figs.history_figure(history) if history.trials else None,
            f"Each dot is a complete trial's {metric}{first} (at tuning fidelity); the line "
            "is the best so far. Crosses: pruned trials at their last reported value.",
            NO_COMPLETE,
        ),
        figure_section(
            "curves",
            "Learning curves",
            figs.curves_figure(curves) if curves.curves else None,
            f"{curves.metric} at each evaluation round of every trial: pruned trials faint "
            "grey, complete ones blue, the best one bold orange."
            + ("" if curves.metric == metric else f" ({metric} is one number per trial.)"),
            "No trial reported any round.",
        ),
        *_time_sections(study),
        figure_section(
            "importance",
            "Parameter importances",
            figs.importance_figure(importance) if importance.importances else None,
            "Share of the variation in the objective each parameter explains (Optuna's "
            "default evaluator, normalized to 1). With few trials, treat it as a hint.",
            f"Not available: {importance.note}.",
        ),
        figure_section(
            "parallel",
            "Parallel coordinates",
            figs.parallel_figure(params, list(importance.importances)) if in_all else None,
            "One line per complete trial; drag along an axis to filter the lines.",
            no_params,
        ),
        figure_section(
            "slices",
            "Slice plots",
            figs.slice_figure(params) if has_params else None,
            "The objective against each parameter; log axes where the parameter was "
            "searched on a log scale.",
            no_params,
        ),
        figure_section(
            "contour",
            "Contour of the two most important parameters",
            figs.contour_figure(contour) if contour.x is not None else None,
            "Interpolated (inverse-distance weighting) from the trials shown as dots; "
            "trust it only near them.",
            f"Not available: {contour.note}.",
        ),
    ]


def _fidelity_section(study: optuna.Study) -> Section:
    data = fidelity_data(study)
    seeds = {len(p.get("seeds") or []) for p in rec.promotions(study).values()}
    missing = (
        "No promotion ran: `fedhpo tune --promote K` re-runs the top K configs at full "
        "fidelity and this section compares both rankings."
        if not rec.promotions(study)
        else "No promoted config has both a low- and a full-fidelity score."
    )
    section = figure_section(
        "fidelity",
        "Fidelity check",
        figs.fidelity_figure(data) if data.trials else None,
        f"Promoted configs re-run at full fidelity ({'/'.join(map(str, sorted(seeds)))} "
        "seeds each). A rank correlation near 1 means the cheap tuning runs rank configs "
        "as full runs would.",
        missing,
    )
    check = rec.fidelity_check(study)
    if check:
        rho = [None if r is None else round(r, 3) for r in check.get("rho", [])]
        rows = [[r, p] for r, p in zip(check.get("rungs", []), rho, strict=False)]
        body = note(str(check.get("message", "")), warn="UNLIKE" in str(check.get("message")))
        body += table(TableData(["rounds", "Spearman vs full fidelity"], rows))
        section = Section(section.id, section.title, body + section.body)
    return section


def _clients_section(study: optuna.Study) -> Section:
    data = clients_data(study)
    return figure_section(
        "clients",
        "Per-client accuracy",
        figs.clients_figure(data) if data.accuracies else None,
        f"Accuracy of trial {data.trial}'s final model on each client's data, from its "
        "tuning run (promotion re-runs do not record clients). A wide spread means the "
        "global model serves some clients poorly.",
        f"Not available: {data.note}.",
    )


def _pareto_sections(study: optuna.Study) -> list[Section]:
    pareto = pareto_data(study)
    if pareto is None:
        return []
    intro = "Complete trials on the first two objectives; red: the Pareto-optimal trials."
    if len(study.directions) > 2:
        intro += " The front is computed on all objectives, so it may look dominated here."
    fig = figs.pareto_figure(pareto) if pareto.trials else None
    return [figure_section("pareto", "Pareto front", fig, intro, NO_COMPLETE)]


def study_sections(study: optuna.Study, storage: str | None = None) -> list[Section]:
    """Every section of a single-study report, in page order; commands it suggests name
    ``storage``, the URL the study was read from (None: unknown, left out)."""
    single = len(study.directions) == 1
    return [
        header_section(header_data(study)),
        leaderboard_section(leaderboard_data(study), study.study_name, storage),
        *_pareto_sections(study),
        *_insight_sections(study),
        *([_fidelity_section(study)] if single else []),
        _clients_section(study),
    ]


def report_html(study: optuna.Study, storage: str | None = None) -> str:
    """The single-study report page (expects plotly.min.js next to it); ``storage``: the
    study's URL, for the commands it suggests."""
    return page(f"fedhpo report: {study.study_name}", study_sections(study, storage))


def comparison_html(studies: Sequence[optuna.Study]) -> str:
    """Best-so-far curves of several studies, by trial count and by compute time."""
    data = comparison_data(list(studies))
    by_count, by_time = figs.comparison_figures(data)
    names = [s.study_name for s in studies]
    sections = [
        Section("studies", "Studies", _studies_table(studies, data)),
        figure_section(
            "by-trials",
            "Best so far vs. trials",
            by_count,
            "Best value of each study's first objective after each finished trial "
            "(complete, pruned or failed), in trial order.",
        ),
        figure_section(
            "by-time",
            "Best so far vs. compute",
            by_time,
            "The same against the summed wall time of the trials so far: pruning and "
            "cheaper fidelities show up as a steeper climb per second.",
        ),
    ]
    return page("fedhpo comparison", sections, subtitle="studies: " + ", ".join(names))


def _studies_table(studies: Sequence[optuna.Study], data: ComparisonData) -> str:
    """One row per study: objective, trial counts, wall time, final best so far."""
    rows = []
    for study, series in zip(studies, data.series, strict=True):
        h = header_data(study)
        c = h.counts
        best = next((b for b in reversed(series.best_so_far) if b is not None), None)
        objective = f"{series.metric} ({series.direction})"
        rows.append(
            [
                h.study,
                objective,
                sum(c.values()),
                c["complete"],
                c["pruned"],
                c["failed"],
                round(h.total_wall_seconds, 1),
                best,
            ]
        )
    columns = ["study", "objective", "trials", "complete", "pruned", "failed", "wall s", "best"]
    body = table(TableData(columns, rows))
    if len({(s.metric, s.direction) for s in data.series}) > 1:
        body += note("These studies optimize different objectives: compare with care.", True)
    return body


def write_page(out_dir: str | Path, text: str) -> Path:
    """Write ``index.html`` with ``text`` and a local ``plotly.min.js`` to ``out_dir``."""
    out = out_folder(out_dir)
    try:
        return _write_files(out, text)
    except OSError as exc:
        raise writing_error(exc.filename or out, exc) from None


def _write_files(out: Path, text: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    js = plotly.offline.get_plotlyjs().encode("utf-8")
    target = out / PLOTLY_JS
    if not target.exists() or target.stat().st_size != len(js):
        target.write_bytes(js)
    index = out / "index.html"
    tmp = out / "index.html.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(index)
    return index


def write_report(
    study: optuna.Study, out_dir: str | Path | None = None, storage: str | None = None
) -> Path:
    """Write ``index.html`` and ``plotly.min.js`` to ``out_dir`` (default
    ``reports/<safe study name>``); returns the index path. Opens offline. ``storage``: the
    URL the study was read from, which the commands the report suggests then name."""
    out = out_folder(out_dir or default_out_dir(study.study_name))  # before the work
    return write_page(out, report_html(study, storage))


def write_comparison(studies: Sequence[optuna.Study], out_dir: str | Path | None = None) -> Path:
    """Write a comparison of ``studies``' best-so-far curves; returns the index path."""
    if not studies:
        raise ValueError("write_comparison needs at least one study")
    names = [s.study_name for s in studies]
    out = out_folder(out_dir or default_comparison_dir(names))
    return write_page(out, comparison_html(studies))
