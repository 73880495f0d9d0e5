"""Successive halving over rounds, judged against every recorded curve.

At each rung (the first rung, then about times the reduction factor; see :func:`rungs`) a
trial goes on only if its value is in the best ``1/reduction`` of the values that every other
trial reported at that round: finished, pruned or running, the fidelity check's full runs
included (they report every round and are never stopped, so from the first trial on the
search is measured against configs that ran to the end). Asynchronous like ASHA: no trial
waits for a rung to fill.

The first trials of a study have nothing to be judged against. ASHA lets them go on, and
so did fedhpo until the quality benchmark showed what that costs: the base config (trial 0)
and the next one or two random configs ran to the end unjudged, up to a third of a budget
of 10 full runs. Instead, the first rung needs a *sample*: while fewer than ``sample``
other trials have reported there, a trial stops at it, and the trials that make up the
sample (a ninth of a run each under the default schedule) are the yardstick of every later
one. At later rungs a trial with fewer than ``reduction - 1`` others goes on, as in ASHA:
it has already beaten the sample once.
"""

from __future__ import annotations

import math

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)

SAMPLE = 4
"""Other trials a trial's first rung needs before it is judged there (below it, it stops)."""


def rungs(first: int, rounds: int, reduction: int, every: int = 1) -> list[int]:
    """``first``, then rungs growing by about ``reduction`` up to ``rounds / reduction``, on
    reporting rounds (multiples of ``every``).

    The rungs are spaced geometrically between ``first`` and the full run rather than by
    multiplying ``first`` up, so the last one is not just short of the end: with 30 rounds
    and a first rung of 3, ``3, 9`` and not ``3, 9, 27``, whose verdict would stop a trial
    that has already spent nine tenths of a full run.
    """
    first = max(1, first)
    if first >= rounds:
        return []
    count = max(1, round(math.log(rounds / first, reduction)))
    out: list[int] = []
    for i in range(count):
        r = max(every, round(first * (rounds / first) ** (i / count) / every) * every)
        if r < rounds and r not in out:
            out.append(r)
    return out


class CurveHalving(BasePruner):
    """The pruner of fedhpo's default search (see the module docstring).

    ``reasons`` keeps, by trial number, why this process's pruner stopped a trial, for its
    record (``status_reason``)."""

    def __init__(
        self, first: int, rounds: int, reduction: int = 3, every: int = 1, sample: int = SAMPLE
    ) -> None:
        self.rungs = set(rungs(first, rounds, reduction, every))
        self.first = min(self.rungs, default=None)
        self.reduction = reduction
        self.sample = sample
        self.reasons: dict[int, str] = {}

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        reason = self._verdict(study, trial)
        if reason is not None:
            self.reasons[trial.number] = reason
        return reason is not None

    def _verdict(self, study: optuna.Study, trial: FrozenTrial) -> str | None:
        """Why ``trial`` stops at its last step, or None if it goes on."""
        step = trial.last_step
        if step is None or step not in self.rungs:
            return None
        value = trial.intermediate_values[step]
        if not math.isfinite(value):
            return f"pruned at round {step}: its value is not finite"
        others = [
            t.intermediate_values[step]
            for t in study.get_trials(deepcopy=False, states=_STATES)
            if t.number != trial.number and step in t.intermediate_values
        ]
        others = [v for v in others if math.isfinite(v)]
        if step == self.first and len(others) < self.sample:
            return (
                f"pruned at round {step}: one of the first rung's sample "
                f"({len(others)} of {self.sample} other trials had reported there)"
            )
        if len(others) < self.reduction - 1:
            return None
        keep = max(1, math.ceil((len(others) + 1) / self.reduction))
        sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
        better = sum(1 for v in others if sign * v < sign * value)
        if better < keep:
            return None
        return (
            f"pruned at round {step}: {better} of {len(others)} other trials were better "
            f"there (the best {keep} go on)"
        )
