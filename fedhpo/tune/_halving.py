"""Successive halving over rounds, judged against every recorded curve.

At each rung (the first rung, then times the reduction factor, up to the trials' rounds) a
trial goes on only if its value is in the best ``1/reduction`` of the values that every other
trial reported at that round: finished, pruned or running, the fidelity check's full runs
included (they report every round and are never stopped, so from the first trial on the
search is measured against configs that ran to the end). Asynchronous like ASHA: no trial
waits for a rung to fill; with fewer than ``reduction - 1`` others at a rung it goes on.
"""

from __future__ import annotations

import math

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def rungs(first: int, rounds: int, reduction: int) -> list[int]:
    """``first, first * reduction, ...`` below ``rounds``."""
    out, r = [], max(1, first)
    while r < rounds:
        out.append(r)
        r *= reduction
    return out


class CurveHalving(BasePruner):
    """The pruner of fedhpo's default search (see the module docstring)."""

    def __init__(self, first: int, rounds: int, reduction: int = 3) -> None:
        self.rungs = set(rungs(first, rounds, reduction))
        self.reduction = reduction

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step not in self.rungs:
            return False
        value = trial.intermediate_values[step]
        if not math.isfinite(value):
            return True
        others = [
            t.intermediate_values[step]
            for t in study.get_trials(deepcopy=False, states=_STATES)
            if t.number != trial.number and step in t.intermediate_values
        ]
        others = [v for v in others if math.isfinite(v)]
        if len(others) < self.reduction - 1:
            return False
        keep = max(1, math.ceil((len(others) + 1) / self.reduction))
        sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
        better = sum(1 for v in others if sign * v < sign * value)
        return better >= keep
