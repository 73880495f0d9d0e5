"""The strategies the quality benchmark compares, each run on replayed trials at budget B."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from fedhpo.bench.quality._problems import Problem, point_key
from fedhpo.bench.quality._replay import Replay
from fedhpo.bench.quality._truth import Table
from fedhpo.space import Fidelity, SearchSpace
from fedhpo.store import best_trial
from fedhpo.store import records as rec
from fedhpo.tune import tune

#: name -> how it changes the problem's space (``None``: the base config alone, no search).
STRATEGIES: dict[str, Callable[[SearchSpace], SearchSpace] | None] = {}


def _strategy(name: str) -> Callable[[Callable[[SearchSpace], SearchSpace]], Any]:
    def register(fn: Callable[[SearchSpace], SearchSpace]) -> Any:
        STRATEGIES[name] = fn
        return fn

    return register


def _tuner(space: SearchSpace, **changes: Any) -> SearchSpace:
    return dataclasses.replace(space, tuner=dataclasses.replace(space.tuner, **changes))


@_strategy("default")
def _default(space: SearchSpace) -> SearchSpace:
    """What ``fedhpo tune --space FILE`` does with no other flag."""
    return space


def _full(space: SearchSpace, sampler: str) -> SearchSpace:
    space = dataclasses.replace(space, fidelity=Fidelity())
    return _tuner(space, sampler=sampler, pruner="none", promote=0, calibrate=False)


@_strategy("random_full")
def _random_full(space: SearchSpace) -> SearchSpace:
    """Random search, every trial a full run, no pruning, no promotion."""
    return _full(space, "random")


@_strategy("tpe_full")
def _tpe_full(space: SearchSpace) -> SearchSpace:
    """TPE, every trial a full run, no pruning, no promotion."""
    return _full(space, "tpe")


STRATEGIES["base"] = None

#: Variants of the default, for choosing it (run them with ``--strategies``).
VARIANTS: dict[str, Callable[[SearchSpace], SearchSpace]] = {
    "default_check": lambda s: _tuner(s, calibrate=True),
    "default_promote_1": lambda s: _tuner(s, promote=1),
    "default_hyperband": lambda s: _tuner(s, pruner="hyperband"),
    "default_check_promote_1": lambda s: _tuner(s, calibrate=True, promote=1),
}


@dataclass(frozen=True)
class Outcome:
    """One strategy run: the config it recommends, its ground truth and what it spent."""

    strategy: str
    seed: int
    point: dict[str, Any]
    truth: float
    tried_truth: float
    """Ground truth of the best config the strategy ran at all, pruned trials included: what
    a perfect choice among its own trials would score. ``truth`` falls short of it by what
    the choice lost; ``tried_truth`` falls short of the grid's best by what the search never
    tried."""
    full_runs: float
    """Compute spent, in full-run equivalents (client steps of the base config's full run)."""
    trials: int
    history: list[tuple[float, float]]
    """(compute so far, ground truth of the best complete trial so far), trial by trial."""


def run_strategy(
    name: str, problem: Problem, table: Table, seed: int, space: SearchSpace | None = None
) -> Outcome:
    """Run strategy ``name`` with tuner seed ``seed`` on replayed trials."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = space or problem.space()
    replay = Replay(table, space)
    full_steps = sum(table.run(replay.point_of(space.base), space.base.seed)["steps"])
    make = STRATEGIES[name] if name in STRATEGIES else VARIANTS[name]
    if make is None:
        point = replay.point_of(space.base)
        truth = table.truth(point, problem.truth_seeds)
        return Outcome(name, seed, point, truth, truth, 0.0, 0, [(0.0, truth)])
    searched = _tuner(make(space), seed=seed)
    study = tune(
        searched,
        storage=optuna.storages.InMemoryStorage(),
        study=f"{problem.name}-{name}-{seed}",
        budget=problem.budget,
        run=replay,
        log=lambda _: None,
    )
    point = replay.snap(best_trial(study).params | _inactive(space, best_trial(study).params))
    tried = [replay.snap(t.params | _inactive(space, t.params)) for t in study.trials]
    distinct = {point_key(p): p for p in tried}.values()
    compute = study.user_attrs[rec.COMPUTE]
    return Outcome(
        name,
        seed,
        point,
        table.truth(point, problem.truth_seeds),
        max(table.truth(p, problem.truth_seeds) for p in distinct),
        compute["full_runs"],
        len(study.trials),
        _history(study, space, replay, table, problem, full_steps),
    )


def _inactive(space: SearchSpace, params: dict[str, Any]) -> dict[str, Any]:
    """Base-config values of the params a trial did not set (inactive conditional ones)."""
    data = space.base.to_dict()
    out = {}
    for p in space.params:
        if p.name not in params:
            node: Any = data
            for part in p.name.split("."):
                node = node[part]
            out[p.name] = node
    return out


def _history(
    study: optuna.Study,
    space: SearchSpace,
    replay: Replay,
    table: Table,
    problem: Problem,
    full_steps: int,
) -> list[tuple[float, float]]:
    """The incumbent's ground truth as compute accumulates (before promotion)."""
    sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
    spent, best, best_value = 0, None, -math.inf
    out: list[tuple[float, float]] = []
    for t in sorted(study.trials, key=lambda t: t.number):
        spent += rec.trial_steps(t)
        done = t.state == optuna.trial.TrialState.COMPLETE and t.value is not None
        if done and sign * float(t.value) > best_value:  # type: ignore[arg-type]
            best_value = sign * float(t.value)  # type: ignore[arg-type]
            best = replay.snap(t.params | _inactive(space, t.params))
        if best is not None:
            out.append((spent / full_steps, table.truth(best, problem.truth_seeds)))
    return out
