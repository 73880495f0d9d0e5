"""Fidelity calibration: do short runs rank configs like full runs? Measure, then choose.

A new study first runs a few space-filling configs (the base config among them) to full
fidelity. Each run's validation curve holds its value at every shorter fidelity too (a run
of ``r`` rounds is the first ``r`` rounds of the full run, for the same seed), so the rank
correlation between "value after ``r`` rounds" and "value at the end" costs nothing more.
The pruner's first rung is the cheapest candidate that ranks like full fidelity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from fedhpo.space import Param, SearchSpace
from fedhpo.store import records as rec

#: Configs run to full fidelity at the start of a study (the base config is one of them).
POINTS = 4
#: Spearman correlation with the full-fidelity ranking that counts as "ranks alike".
THRESHOLD = 0.8
#: Candidate first rungs, as shares of the full rounds (cheapest first). None is below a
#: ninth: with four configs a Spearman of 0.8 happens by chance one time in six, so a rung of
#: one round in thirty (what 1/27 gave on workload W) was sometimes chosen on luck, and the
#: quality benchmark found no gain from it (README, "The default search").
SHARES = (1 / 9, 1 / 3)


@dataclass(frozen=True)
class FidelityCheck:
    """The calibration's measurements and choice (stored on the study, shown in reports)."""

    rungs: list[int]
    rho: list[float | None]
    """Spearman correlation of each rung's values with the final values (None: undefined)."""
    chosen: int
    """The first rung the pruner uses."""
    full_rounds: int
    trials: list[int]
    threshold: float = THRESHOLD
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _from_unit(param: Param, u: float) -> Any:
    """The value at quantile ``u`` in [0, 1) of a param's domain (log scale if it has one)."""
    dist = param.distribution()
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[min(len(dist.choices) - 1, int(u * len(dist.choices)))]
    if isinstance(dist, IntDistribution):
        count = (dist.high - dist.low) // dist.step + 1
        return dist.low + dist.step * min(count - 1, int(u * count))
    assert isinstance(dist, FloatDistribution)
    if dist.log:
        return float(math.exp(math.log(dist.low) + u * (math.log(dist.high) - math.log(dist.low))))
    if dist.step:
        count = round((dist.high - dist.low) / dist.step) + 1
        return float(dist.low + dist.step * min(count - 1, int(u * count)))
    return float(dist.low + u * (dist.high - dist.low))


def design(space: SearchSpace, count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` Latin-hypercube points over the space (inactive params left out)."""
    rng = np.random.default_rng(seed)
    strata = [rng.permutation(count) for _ in space.params]
    points = []
    for i in range(count):
        point: dict[str, Any] = {}
        for param, order in zip(space.params, strata, strict=True):
            if param.condition is None or param.condition.holds(point):
                point[param.name] = _from_unit(param, (order[i] + rng.random()) / count)
        points.append(point)
    return points


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None if either is constant."""
    rx, ry = _ranks(xs), _ranks(ys)
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def _ranks(values: Sequence[float]) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    order = np.argsort(a, kind="stable")
    ranks = np.empty(len(a))
    ranks[order] = np.arange(len(a))
    for v in np.unique(a):
        ranks[a == v] = ranks[a == v].mean()
    return ranks


def candidate_rungs(full_rounds: int, every: int = 1) -> list[int]:
    """The first rungs to test: shares of the full rounds, on reporting rounds, distinct."""
    out: list[int] = []
    for share in SHARES:
        r = max(every, round(full_rounds * share) // every * every)
        if r < full_rounds and r not in out:
            out.append(r)
    return out


def choose(
    curves: Sequence[Sequence[float]],
    rungs: Sequence[int],
    maximize: bool,
    threshold: float = THRESHOLD,
) -> tuple[list[float | None], int | None]:
    """Rank correlations of each rung with the end of ``curves`` (value per round, round 1
    first; a diverged run's missing rounds are worst), and the cheapest rung that reaches
    ``threshold`` (None if none does)."""
    worst = -math.inf if maximize else math.inf
    full = max(len(c) for c in curves)

    def at(curve: Sequence[float], r: int) -> float:
        value = curve[r - 1] if len(curve) >= r else None
        return worst if value is None or not math.isfinite(value) else float(value)

    finals = [at(c, full) if len(c) == full else worst for c in curves]
    rho = [spearman([at(c, r) for c in curves], finals) for r in rungs]
    chosen = next(
        (r for r, p in zip(rungs, rho, strict=True) if p is not None and p >= threshold - 1e-9),
        None,
    )
    return rho, chosen


def check_fidelity(study: optuna.Study, space: SearchSpace, every: int = 1) -> FidelityCheck | None:
    """Measure the calibration trials of ``study`` and choose the first rung (None if
    fewer than three of them finished)."""
    metric = space.objectives[0].metric
    full = space.base.federation.rounds
    # complete, or pruned because they diverged: a failed run (an error, a killed worker) says
    # nothing of ranking, and its retry is queued as a run of the check
    trials = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if t.user_attrs.get(rec.CALIBRATION)
    ]  # fmt: skip
    if len(trials) < 3:
        return None
    curves = [list((t.user_attrs.get(rec.CURVES) or {}).get(metric) or []) for t in trials]
    curves = [[math.nan if v is None else v for v in c] for c in curves]
    explicit = space.fidelity.rounds
    rungs = [explicit] if explicit and explicit < full else candidate_rungs(full, every)
    rho, chosen = choose(curves, rungs, space.objectives[0].direction == "maximize")
    text = ", ".join(
        f"{r} rounds: {'n/a' if p is None else f'{p:+.2f}'}"
        for r, p in zip(rungs, rho, strict=True)
    )
    if explicit and explicit < full:
        ok = chosen is not None
        message = (
            f"fidelity check: {explicit} of {full} rounds ranks {len(trials)} configs "
            + ("like full fidelity" if ok else "UNLIKE full fidelity")
            + f" (Spearman {text}; threshold {THRESHOLD})"
        )
        if not ok:
            message += "; drop fidelity.rounds to let the schedule reach full fidelity"
        return FidelityCheck(
            rungs, rho, explicit, full, [t.number for t in trials], THRESHOLD, message
        )
    if chosen is None:
        chosen = rungs[-1] if rungs else full
        verdict = f"no shorter run ranks like full fidelity; first rung {chosen} rounds"
    else:
        verdict = f"first rung {chosen} of {full} rounds"
    message = f"fidelity check on {len(trials)} full runs (Spearman {text}): {verdict}"
    return FidelityCheck(rungs, rho, chosen, full, [t.number for t in trials], THRESHOLD, message)
