"""Proposals that do not repeat: redraw a config that is nearly one already tried.

A model-based sampler that has few results exploits the best of them hard: right after the
fidelity check, TPE proposed a config next to the check's best (``lr`` 0.109 beside 0.126,
the other parameters equal) and spent a full run learning nothing new, since a trial of
nearly the same config with the same seed gives nearly the same curve. In one traced search
of the quality benchmark's server-optimizer problem, 2 of its 10 full runs were such repeats.
``DistinctSampler`` wraps a sampler and redraws such proposals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from fedhpo.sim.sampling import derive_seed

#: Two configs closer than this on every numeric parameter's unit scale (a tenth of its
#: range, on the log scale for log parameters), with equal categorical values, are repeats.
MIN_DISTANCE = 0.1
#: Proposals drawn before giving up and drawing at random.
TRIES = 16
#: The stream of a trial's random fallback under the sampler's seed: its own, not the inner
#: sampler's (TPE's start-up trials are a RandomSampler on the same seed, so a fallback on
#: that seed replayed the first start-up config exactly).
_FALLBACK = 1

_TRIED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def _unit(dist: BaseDistribution, value: Any) -> float:
    low, high, log = dist.low, dist.high, dist.log  # type: ignore[attr-defined]
    if log:
        return (math.log(value) - math.log(low)) / ((math.log(high) - math.log(low)) or 1.0)
    return (value - low) / ((high - low) or 1.0)


def distance(
    proposal: Mapping[str, Any], tried: Mapping[str, Any], dists: Mapping[str, BaseDistribution]
) -> float:
    """How far ``proposal`` is from the ``tried`` config: the largest difference of a numeric
    parameter on its unit scale; ``inf`` if a categorical value differs or a parameter of
    ``tried`` (its active ones, with their distributions in ``dists``) is missing."""
    far = 0.0
    for name, value in tried.items():
        if name not in proposal:
            return math.inf
        dist = dists[name]
        if isinstance(dist, CategoricalDistribution):
            if proposal[name] != value:
                return math.inf
            continue
        far = max(far, abs(_unit(dist, proposal[name]) - _unit(dist, value)))
    return far


class DistinctSampler(optuna.samplers.BaseSampler):
    """``inner``'s joint proposals, redrawn (up to ``tries`` times) while one lies within
    ``min_distance`` of a config already tried (finished, pruned or running); if every draw
    does, the trial is drawn at random, from a stream of its own (the seed and the trial
    number, so neither another worker on the seed nor the inner sampler's start-up draws
    give the same config). Parameters the inner sampler draws one by one are passed through
    unchanged."""

    def __init__(
        self,
        inner: optuna.samplers.BaseSampler,
        seed: int | None = None,
        min_distance: float = MIN_DISTANCE,
        tries: int = TRIES,
    ) -> None:
        self.inner = inner
        self.seed = seed
        self.min_distance = min_distance
        self.tries = tries
        self._at_random: dict[int, optuna.samplers.RandomSampler] = {}

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        tried = [
            t
            for t in study.get_trials(deepcopy=False, states=_TRIED)
            if t.number != trial.number and t.params
        ]
        for _ in range(self.tries):
            proposal = self.inner.sample_relative(study, trial, search_space)
            if not proposal or all(
                distance(proposal, t.params, t.distributions) > self.min_distance for t in tried
            ):
                return proposal
        seed = None if self.seed is None else derive_seed(self.seed, _FALLBACK, trial.number)
        self._at_random[trial.number] = optuna.samplers.RandomSampler(
            seed=None if seed is None else seed % 2**32
        )
        return {}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        sampler = self._at_random.get(trial.number, self.inner)
        return sampler.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._at_random.pop(trial.number, None)
        self.inner.after_trial(study, trial, state, values)
