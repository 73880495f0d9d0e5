"""Pure builders: a study's trials and user attributes -> plain dataclasses to draw from."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from fedhpo.store import leaderboard, other_trials
from fedhpo.store import records as rec
from fedhpo.store.budget import Budget, load_budget

LEADERBOARD_TOP = 20


@dataclass(frozen=True)
class HeaderData:
    """Who the study is and what it cost."""

    study: str
    space_file: str | None
    space_text: str | None
    base_config: str | None  # YAML
    objectives: list[tuple[str, str]]  # (metric, direction)
    counts: dict[str, int]  # complete, pruned, failed, running, waiting
    total_wall_seconds: float
    version: str | None
    tuner: dict[str, Any] = field(default_factory=dict)
    fidelity: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TableData:
    """A table as column names and rows of plain values (None for missing)."""

    columns: list[str]
    rows: list[list[Any]]


@dataclass(frozen=True)
class LeaderboardData:
    """The top trials, the best trial's parameters, and the trials that did not complete."""

    title: str
    board: TableData
    best_trial: int | None
    best_params: dict[str, Any]
    others: TableData
    note: str | None = None  # why a trial that did not complete is ranked


@dataclass(frozen=True)
class HistoryData:
    """Complete trials' objective values in trial order and the best value so far."""

    metric: str
    direction: str
    trials: list[int]
    values: list[float]
    best_so_far: list[float]
    pruned_trials: list[int]  # pruned trials and their last reported value
    pruned_values: list[float]


@dataclass(frozen=True)
class Curve:
    """One trial's objective metric over rounds."""

    trial: int
    state: str
    steps: list[int]
    values: list[float]
    pruned: bool
    best: bool


@dataclass(frozen=True)
class CurvesData:
    metric: str
    curves: list[Curve]
    best_trial: int | None


@dataclass(frozen=True)
class FidelityData:
    """Promoted configs: low-fidelity score vs. full-fidelity mean +- std over seeds."""

    metric: str
    trials: list[int]
    low_fidelity: list[float]
    mean: list[float]
    std: list[float]
    spearman: float | None


@dataclass(frozen=True)
class ClientsData:
    """Per-client accuracies of the best config's run."""

    trial: int | None
    promoted: bool
    accuracies: list[float]
    note: str | None = None


@dataclass(frozen=True)
class ParetoData:
    """All complete trials on the first two objectives, and the Pareto-optimal ones."""

    metrics: tuple[str, str]
    directions: tuple[str, str]
    trials: list[int]
    x: list[float]
    y: list[float]
    front_trials: list[int]  # sorted by x
    front_x: list[float]
    front_y: list[float]


@dataclass(frozen=True)
class ComparisonSeries:
    """One study's best-so-far against finished-trial count and cumulative trial wall time."""

    study: str
    metric: str
    direction: str
    trial_count: list[int]
    cumulative_seconds: list[float]
    best_so_far: list[float | None]


@dataclass(frozen=True)
class ComparisonData:
    series: list[ComparisonSeries]


def finite(value: Any) -> TypeGuard[float]:
    """A real number (not None, nan or inf)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _trials(study: optuna.Study, *states: TrialState) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=states or None)


def trial_by_number(study: optuna.Study, number: int) -> FrozenTrial:
    """The trial numbered ``number`` (numbers are positions in the study's trial list)."""
    trials = _trials(study)
    if 0 <= number < len(trials) and trials[number].number == number:
        return trials[number]
    return next(t for t in trials if t.number == number)


def primary(study: optuna.Study) -> tuple[str, str]:
    """The first objective (metric, direction): the one history, curves and importances use."""
    first = rec.objectives(study)[0]
    return str(first["metric"]), str(first["direction"])


def _value0(trial: FrozenTrial) -> float | None:
    values = trial.values
    return values[0] if values and finite(values[0]) else None


def best_trial_number(study: optuna.Study) -> int | None:
    """The leaderboard's first trial (the promoted winner if promotion ran); for
    multi-objective studies the Pareto-optimal trial best on the first objective."""
    if len(study.directions) > 1:
        sign = 1.0 if primary(study)[1] == "minimize" else -1.0
        scored = [(sign * v, t.number) for t in study.best_trials if (v := _value0(t)) is not None]
        return min(scored)[1] if scored else None
    board = leaderboard(study, top=1)
    return None if board.empty else int(board["trial"].iloc[0])


def header_data(study: optuna.Study) -> HeaderData:
    """Study name, space, base config, objectives, trial counts, total wall time, version."""
    attrs = study.user_attrs
    counts = {"complete": 0, "pruned": 0, "failed": 0, "running": 0, "waiting": 0}
    total = 0.0
    for t in _trials(study):
        key = "failed" if t.state == TrialState.FAIL else t.state.name.lower()
        counts[key] = counts.get(key, 0) + 1
        seconds = t.user_attrs.get(rec.WALL_SECONDS)
        total += seconds if finite(seconds) else 0.0
    base = attrs.get(rec.BASE_CONFIG)
    space = attrs.get(rec.SPACE) or {}
    return HeaderData(
        study=study.study_name,
        space_file=_text(attrs.get(rec.SPACE_FILE)),
        space_text=_text(attrs.get(rec.SPACE_TEXT)),
        base_config=None if base is None else yaml.safe_dump(base, sort_keys=False),
        objectives=[(str(o["metric"]), str(o["direction"])) for o in rec.objectives(study)],
        counts=counts,
        total_wall_seconds=total,
        version=_text(attrs.get(rec.VERSION)),
        tuner=_tuner(study, space.get("tuner") if isinstance(space, dict) else None),
        fidelity=dict(space.get("fidelity") or {}) if isinstance(space, dict) else {},
    )


def _tuner(study: optuna.Study, settings: Any) -> dict[str, Any]:
    """The space's tuner settings with the limits the study ran under in place of the space
    file's (which ``--trials``, ``--budget`` and ``--timeout`` override, and which records
    its defaults): the shared budget's trials and timeout, the last session's compute budget
    in full runs, or the shared budget in client steps when no session recorded its compute
    (a ``--create-only`` study run by workers). Limits the study did not record are left out."""
    tuner = dict(settings) if isinstance(settings, dict) else {}
    budget = load_budget(study) or Budget()
    compute = study.user_attrs.get(rec.COMPUTE)
    ran = {"trials": budget.trials, "budget": None, "timeout": budget.timeout}
    if isinstance(compute, dict):
        ran["budget"] = compute.get("budget")
    else:
        ran["budget steps"] = budget.steps
    tuner.update(ran)
    return {k: v for k, v in tuner.items() if v is not None}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _table(frame: Any) -> TableData:
    if frame.empty:
        return TableData(columns=[], rows=[])
    rows = [[_plain(v) for v in row] for row in frame.itertuples(index=False)]
    return TableData(columns=[str(c) for c in frame.columns], rows=rows)


def _plain(value: Any) -> Any:
    """pandas/numpy scalars -> Python; nan -> None."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def leaderboard_data(study: optuna.Study, top: int = LEADERBOARD_TOP) -> LeaderboardData:
    """The store's leaderboard (top ``top``), the best trial's params, the other trials."""
    board = leaderboard(study, top=top)
    multi = len(study.directions) > 1
    unfinished = _unfinished(board)
    which = "trials" if unfinished else "complete trials"
    title = f"Top {len(board)} {which}" + (" by Pareto front" if multi else "")
    best = best_trial_number(study)
    params: dict[str, Any] = {}
    if best is not None:
        params = {} if multi else dict(sorted(trial_by_number(study, best).params.items()))
    return LeaderboardData(
        title=title,
        board=_table(board),
        best_trial=None if multi else best,
        best_params=params,
        others=_table(other_trials(study)),
        note=" ".join(unfinished) or None,
    )


def _unfinished(board: Any) -> list[str]:
    """Why each ranked trial that did not complete is on the board: stopped by the budget
    while ahead (ranked by its value at that round), or re-run by promotion."""
    out = []
    for row in board.itertuples(index=False):
        if row.state == "complete":
            continue
        ahead = _plain(getattr(row, "ahead_at_round", None))
        if ahead is not None:
            out.append(
                f"Trial {row.trial} did not finish: the budget stopped it at round {int(ahead)}, "
                "where it was ahead of the best complete trial (its value is the one there)."
            )
        else:
            out.append(
                f"Trial {row.trial} did not finish its tuning run ({row.state}); it is ranked "
                "by its full-fidelity re-runs."
            )
    return out


def running_best(values: list[float], direction: str) -> list[float]:
    """The best value so far at each position (running max to maximize, min to minimize)."""
    pick = max if direction == "maximize" else min
    out: list[float] = []
    for v in values:
        out.append(v if not out else pick(out[-1], v))
    return out


def history_data(study: optuna.Study) -> HistoryData:
    """Each complete trial's (first) objective value, in trial order, with the best so far."""
    metric, direction = primary(study)
    trials, values, pruned_trials, pruned_values = [], [], [], []
    for t in _trials(study, TrialState.COMPLETE, TrialState.PRUNED):
        value = _value0(t)
        if value is None and t.state == TrialState.PRUNED and t.intermediate_values:
            value = t.intermediate_values[max(t.intermediate_values)]
            value = value if finite(value) else None
        if value is None:
            continue
        if t.state == TrialState.COMPLETE:
            trials.append(t.number)
            values.append(float(value))
        else:
            pruned_trials.append(t.number)
            pruned_values.append(float(value))
    return HistoryData(
        metric=metric,
        direction=direction,
        trials=trials,
        values=values,
        best_so_far=running_best(values, direction),
        pruned_trials=pruned_trials,
        pruned_values=pruned_values,
    )


def _steps(trial: FrozenTrial, metric: str) -> tuple[list[int], list[float]]:
    """Per-round objective values: the reported intermediate values, or the recorded curve."""
    if trial.intermediate_values:
        pairs = sorted(trial.intermediate_values.items())
    else:
        curves = trial.user_attrs.get(rec.CURVES) or {}
        pairs = list(zip(curves.get("round") or [], curves.get(metric) or [], strict=False))
    pairs = [(int(s), float(v)) for s, v in pairs if finite(v)]
    return [s for s, _ in pairs], [v for _, v in pairs]


def curves_data(study: optuna.Study) -> CurvesData:
    """Every trial's objective metric over rounds; pruned ones flagged, the best marked.
    An objective no trial has per round (``time_to_accuracy``: one number per run) gives
    validation accuracy per round instead, as the curves in simulated time do."""
    metric, _ = primary(study)
    trials = _trials(study)
    if not any(
        t.intermediate_values or metric in (t.user_attrs.get(rec.CURVES) or {}) for t in trials
    ):
        metric = "val_accuracy"
    best = best_trial_number(study)
    curves = []
    for t in trials:
        steps, values = _steps(t, metric)
        if not steps:
            continue
        curves.append(
            Curve(
                trial=t.number,
                state=t.state.name.lower(),
                steps=steps,
                values=values,
                pruned=t.state == TrialState.PRUNED,
                best=t.number == best,
            )
        )
    return CurvesData(metric=metric, curves=curves, best_trial=best)


def _ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman rank correlation (Pearson on average ranks); None if undefined."""
    if len(x) != len(y):
        raise ValueError(f"need as many x as y values, got {len(x)} and {len(y)}")
    if len(x) < 2:
        return None
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    if vx == 0 or vy == 0:
        return None
    return cov / math.sqrt(vx * vy)


def fidelity_data(study: optuna.Study) -> FidelityData:
    """Each promoted config's low-fidelity value against its full-fidelity mean and std."""
    metric, _ = primary(study)
    trials, low, mean, std = [], [], [], []
    for number, entry in sorted(rec.promotions(study).items()):
        lo, mu = entry.get("low_fidelity"), entry.get("mean")
        if not (finite(lo) and finite(mu)):
            continue
        trials.append(number)
        low.append(float(lo))
        mean.append(float(mu))
        sd = entry.get("std")
        std.append(float(sd) if finite(sd) else 0.0)
    return FidelityData(
        metric=metric,
        trials=trials,
        low_fidelity=low,
        mean=mean,
        std=std,
        spearman=spearman(low, mean),
    )


def clients_data(study: optuna.Study) -> ClientsData:
    """Per-client accuracies recorded for the best trial's (low-fidelity) run."""
    best = best_trial_number(study)
    if best is None:
        return ClientsData(trial=None, promoted=False, accuracies=[], note="no complete trial")
    raw = trial_by_number(study, best).user_attrs.get(rec.CLIENT_ACCURACIES) or []
    accuracies = [float(a) for a in raw if finite(a)]
    note = None if accuracies else f"trial {best} recorded no per-client accuracies"
    return ClientsData(
        trial=best, promoted=best in rec.promotions(study), accuracies=accuracies, note=note
    )


def pareto_data(study: optuna.Study) -> ParetoData | None:
    """The first two objectives of every complete trial and the Pareto front (None if < 2)."""
    objs = rec.objectives(study)
    if len(study.directions) < 2:
        return None
    points = [
        t
        for t in _trials(study, TrialState.COMPLETE)
        if t.values and len(t.values) >= 2 and finite(t.values[0]) and finite(t.values[1])
    ]
    front = sorted(study.best_trials, key=lambda t: (t.values[0], t.values[1], t.number))
    return ParetoData(
        metrics=(str(objs[0]["metric"]), str(objs[1]["metric"])),
        directions=(str(objs[0]["direction"]), str(objs[1]["direction"])),
        trials=[t.number for t in points],
        x=[float(t.values[0]) for t in points],
        y=[float(t.values[1]) for t in points],
        front_trials=[t.number for t in front],
        front_x=[float(t.values[0]) for t in front],
        front_y=[float(t.values[1]) for t in front],
    )


def comparison_series(study: optuna.Study) -> ComparisonSeries:
    """Best-so-far of the first objective after each finished trial (in trial order)."""
    metric, direction = primary(study)
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    count, seconds, best = [], [], []
    elapsed, current = 0.0, None
    pick = max if direction == "maximize" else min
    for i, t in enumerate(_trials(study, *finished), start=1):
        wall = t.user_attrs.get(rec.WALL_SECONDS)
        elapsed += wall if finite(wall) else 0.0
        value = _value0(t) if t.state == TrialState.COMPLETE else None
        if value is not None:
            current = value if current is None else pick(current, value)
        count.append(i)
        seconds.append(elapsed)
        best.append(current)
    return ComparisonSeries(
        study=study.study_name,
        metric=metric,
        direction=direction,
        trial_count=count,
        cumulative_seconds=seconds,
        best_so_far=best,
    )


def comparison_data(studies: list[optuna.Study]) -> ComparisonData:
    """One best-so-far series per study."""
    return ComparisonData(series=[comparison_series(s) for s in studies])
