"""Leaderboards: complete trials ranked (by promoted mean when there is one), the rest apart."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from fedhpo.store import records as rec


def _row(trial: optuna.trial.FrozenTrial, names: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {"trial": trial.number, "state": trial.state.name.lower()}
    values = trial.values or [None] * len(names)
    for name, value in zip(names, values, strict=True):
        row[name] = value
    curves = trial.user_attrs.get(rec.CURVES) or {}
    row["rounds"] = len(curves.get("round", []))
    row["wall_seconds"] = trial.user_attrs.get(rec.WALL_SECONDS)
    row["origin"] = trial.user_attrs.get(rec.ORIGIN, "")
    for key, value in sorted(trial.params.items()):
        row[key] = value
    return row


def leaderboard(study: optuna.Study, top: int | None = None) -> pd.DataFrame:
    """Complete trials, best first. Multi-objective studies list every complete trial by
    Pareto front (column ``front``: 1 is the Pareto front, 2 the front once it is removed,
    and so on), best first on the first objective within a front.

    Where promotion ran, promoted trials come first, ranked by the mean of their
    full-fidelity scores (``promoted_mean``, ``promoted_std``, ``promoted_seeds``); a pruned
    trial that promotion re-ran (the base config, stopped by the search) is listed too.

    A trial the budget stopped after the pruner had judged it at every rung (records'
    ``BUDGET_STOP``) is listed, ahead of the complete trials, when at the round it reached it
    was better than the best complete trial at that same round: the comparison successive
    halving makes at a rung, and the only use of the compute the budget cut short. Its value
    is the one at that round (``ahead_at_round``); `fedhpo run` gives its full-fidelity score.
    """
    objs = rec.objectives(study)
    names = [o["metric"] for o in objs]
    promoted = rec.promotions(study)
    ahead: dict[int, tuple[int, float]] = {}
    fronts: dict[int, int] = {}
    if len(objs) > 1:
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        fronts = pareto_fronts(trials, [o["direction"] for o in objs])
    else:
        # a pruned trial that promotion re-ran (the base config) has full-fidelity results
        states = (TrialState.COMPLETE, TrialState.PRUNED)
        trials = [
            t
            for t in study.get_trials(deepcopy=False, states=states)
            if t.state == TrialState.COMPLETE or t.number in promoted
        ]
        ahead = _ahead_when_stopped(study, trials, names[0], objs[0]["direction"])
        listed = {t.number for t in trials}
        trials += [t for t in study.get_trials(deepcopy=False) if t.number in ahead.keys() - listed]
    rows = [_row(t, names) for t in trials]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    if ahead:  # a stopped trial's value is the one at the round it reached
        pairs = zip(frame["trial"], frame[names[0]], strict=True)
        frame[names[0]] = [ahead[n][1] if n in ahead else v for n, v in pairs]
        frame["ahead_at_round"] = frame["trial"].map(lambda n: ahead.get(n, (None,))[0])
    if promoted:
        frame["promoted_mean"] = frame["trial"].map(lambda n: promoted.get(n, {}).get("mean"))
        frame["promoted_std"] = frame["trial"].map(lambda n: promoted.get(n, {}).get("std"))
        frame["promoted_seeds"] = frame["trial"].map(
            lambda n: len(promoted.get(n, {}).get("values", [])) or None
        )
    if fronts:
        frame.insert(1, "front", frame["trial"].map(fronts))
        ascending = objs[0]["direction"] == "minimize"
        frame = frame.sort_values(
            ["front", names[0], "trial"], ascending=[True, ascending, True], kind="stable"
        )
    if len(objs) == 1:
        ascending = objs[0]["direction"] == "minimize"
        frame["_behind"] = ~frame["trial"].isin(list(ahead))
        keys, orders = ["_behind", names[0]], [True, ascending]
        if promoted:
            frame["_unpromoted"] = frame["promoted_mean"].isna()
            keys = ["_unpromoted", "promoted_mean", *keys]
            orders = [True, ascending, *orders]
        frame = frame.sort_values(keys, ascending=orders, kind="stable", na_position="last")
        frame = frame.drop(columns=[c for c in ["_unpromoted", "_behind"] if c in frame])
    frame.insert(0, "rank", range(1, len(frame) + 1))
    frame = frame.reset_index(drop=True)
    return frame.head(top) if top else frame


def pareto_fronts(trials: list[FrozenTrial], directions: list[str]) -> dict[int, int]:
    """Trial number -> its Pareto front (1 = non-dominated; k = non-dominated once fronts
    1..k-1 are removed); trials with a missing or non-finite value come last."""
    signs = np.array([1.0 if d == "maximize" else -1.0 for d in directions])
    scored = [t for t in trials if t.values and all(math.isfinite(v) for v in t.values)]
    values = np.array([t.values for t in scored], dtype=float).reshape(len(scored), len(signs))
    values = values * signs
    # beats[i, j]: trial i is at least as good as j on every objective and better on one
    at_least = (values[:, None, :] >= values[None, :, :]).all(axis=-1)
    better = (values[:, None, :] > values[None, :, :]).any(axis=-1)
    beats = at_least & better
    front = np.zeros(len(scored), dtype=int)
    left = np.ones(len(scored), dtype=bool)
    k = 0
    while left.any():
        k += 1
        beaten = beats[np.ix_(left, left)].any(axis=0)
        now = np.flatnonzero(left)[~beaten]
        front[now] = k
        left[now] = False
    out = {t.number: int(f) for t, f in zip(scored, front, strict=True)}
    return out | {t.number: k + 1 for t in trials if t.number not in out}


def _ahead_when_stopped(
    study: optuna.Study, ranked: list[FrozenTrial], metric: str, direction: str
) -> dict[int, tuple[int, float]]:
    """Trials the budget stopped once judged that were, at the round they reached, better
    than the best complete trial of ``ranked`` at that round: number -> (round, value)."""
    sign = -1.0 if direction == "minimize" else 1.0
    complete = [
        t
        for t in ranked
        if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
    ]
    if not complete:
        return {}
    best = max(complete, key=lambda t: sign * float(t.value))  # type: ignore[arg-type]
    reference = _curve(best, metric)
    out: dict[int, tuple[int, float]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)):
        stop = t.user_attrs.get(rec.BUDGET_STOP) or {}
        curve = _curve(t, metric)
        if not stop.get("judged") or not curve:
            continue
        round_, value = max(curve.items())
        there = reference.get(round_)
        if there is not None and sign * value > sign * there:
            out[t.number] = (round_, value)
    return out


def _curve(trial: FrozenTrial, metric: str) -> dict[int, float]:
    """The trial's finite values of ``metric`` by round."""
    curves = trial.user_attrs.get(rec.CURVES) or {}
    pairs = zip(curves.get("round", []), curves.get(metric, []), strict=False)
    return {int(r): float(v) for r, v in pairs if v is not None and math.isfinite(v)}


def worker_name(trial: optuna.trial.FrozenTrial) -> str:
    """``host:pid`` of the worker that runs (ran) the trial, or "" if unknown."""
    who = trial.user_attrs.get(rec.WORKER)
    return f"{who.get('host')}:{who.get('pid')}" if isinstance(who, dict) else ""


def other_trials(study: optuna.Study) -> pd.DataFrame:
    """Pruned, failed, running and queued trials, with the reason each ended and its worker."""
    rows = []
    trials = study.get_trials(deepcopy=False)
    # a retry names the trial it repeats; that one was failed for a stale heartbeat, by
    # another worker that could not write its reason (a finished trial takes no attributes)
    retry = {
        t.system_attrs["failed_trial"]: t.number for t in trials if "failed_trial" in t.system_attrs
    }
    for t in trials:
        if t.state == TrialState.COMPLETE:
            continue
        curves = t.user_attrs.get(rec.CURVES) or {}
        reason = t.user_attrs.get(rec.STATUS_REASON, "")
        if not reason and t.state == TrialState.FAIL and t.number in retry:
            who = f"worker {worker_name(t)}" if worker_name(t) else "its worker"
            reason = f"{who} stopped sending heartbeats; queued again as trial {retry[t.number]}"
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name.lower(),
                "rounds": len(curves.get("round", [])),
                "reason": reason,
                "worker": worker_name(t),
                **dict(sorted(t.params.items())),
            }
        )
    return pd.DataFrame(rows)


def count_states(others: pd.DataFrame) -> str:
    """``other_trials``' states counted, e.g. ``2 fail, 3 pruned``."""
    counts = others["state"].value_counts().to_dict()
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


def incomplete_summary(study: optuna.Study) -> str:
    """How a study's trials ended when none is complete, e.g. ``2 pruned (trial 0: diverged:
    non-finite training loss in round 1)``; ``no trial`` for an empty study."""
    others = other_trials(study)
    if others.empty:
        return "no trial"
    text = count_states(others)
    reasons = others[others["reason"] != ""]
    if not reasons.empty:
        first = reasons.iloc[0]
        text += f" (trial {first['trial']}: {first['reason']})"
    return text


def running_trials(study: optuna.Study) -> pd.DataFrame:
    """Trials running now: which worker (host:pid) runs each, since when, rounds reported."""
    rows = [
        {
            "trial": t.number,
            "worker": worker_name(t),
            "started": t.datetime_start.isoformat(sep=" ", timespec="seconds")
            if t.datetime_start
            else "",
            "rounds reported": len(t.intermediate_values),
            **dict(sorted(t.params.items())),
        }
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    ]
    return pd.DataFrame(rows)


def study_summaries(storage: optuna.storages.BaseStorage) -> pd.DataFrame:
    """One row per study: trial counts by state and the best value(s)."""
    rows = []
    for name in optuna.get_all_study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage)
        counts = {s: 0 for s in ("complete", "pruned", "fail", "running", "waiting")}
        workers: list[str] = []
        for t in study.get_trials(deepcopy=False):
            key = t.state.name.lower()
            counts[key] = counts.get(key, 0) + 1
            if t.state == TrialState.RUNNING:
                workers.append(worker_name(t) or "?")
        best: Any = None
        if len(study.directions) == 1:
            best = _best_value(study)
        elif len(study.directions) > 1:
            best = f"{len(study.best_trials)} on Pareto front"
        objs = rec.objectives(study)
        rows.append(
            {
                "study": name,
                "objective": ", ".join(f"{o['metric']} ({o['direction'][:3]})" for o in objs),
                "trials": sum(counts.values()),
                "complete": counts["complete"],
                "pruned": counts["pruned"],
                "failed": counts["fail"],
                "running": counts["running"],
                "queued": counts["waiting"],
                "workers": ", ".join(sorted(set(workers))),
                "best": best,
            }
        )
    return pd.DataFrame(rows)


def _best_value(study: optuna.Study) -> float | None:
    """The best complete value, or None (no complete trial, or one stored without a value)."""
    try:
        return float(study.best_value)
    except (ValueError, TypeError):
        return None
