"""Promotion: re-run the top trials at full fidelity with more seeds, then rank by the mean.

A trial that already ran at full fidelity with the base seed counts as that seed's run
(same config, same seed: the same run), and so does a run an earlier promotion stored for
the same full-fidelity config and seed; only the other seeds are run.
"""

from __future__ import annotations

import copy
import json
import math
import multiprocessing as mp
import signal
import statistics
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from fedhpo._pools import stop_pool
from fedhpo.config import RunConfig
from fedhpo.errors import StudyError
from fedhpo.plugins import load_plugins
from fedhpo.sim.batch import batch_key, run_batch
from fedhpo.sim.threads import set_threads
from fedhpo.space import SearchSpace
from fedhpo.store import leaderboard, open_storage
from fedhpo.store import records as rec
from fedhpo.tune._budget import run_steps
from fedhpo.tune._fidelity import full_config
from fedhpo.tune._objective import Simulate, cached_dataset, simulate
from fedhpo.tune._runner import TuneOptions
from fedhpo.tune._signals import STOP_SIGNALS, stop_signals_held

#: One full run's (objective value, test accuracy, client steps it took when it was made:
#: 0 for a trial's own run, which the search paid for).
Run = tuple[float, float, int]
#: A stored run's (config key, seed): :func:`_run_key`.
RunKey = tuple[str, int]
#: The per-seed lists of a stored promotion entry (:func:`_summary`).
_RUN_COLUMNS = ("seeds", "values", "test_accuracy", "run_steps")


@dataclass(frozen=True)
class Promotion:
    """What :func:`promote` did: the results it stored, by trial number, and the client steps
    of the runs it made (runs it reused cost nothing)."""

    results: dict[int, dict[str, Any]]
    steps: int = 0


def _full_run(space: SearchSpace, params: dict[str, Any], seed: int, run: Simulate) -> Run:
    """One full-fidelity run; the value is nan if it did not complete."""
    set_threads(1)
    result = run(full_config(space.base, params, seed), ())
    value = result.metric(space.objectives[0].metric)
    done = result.status == "completed"
    return (value if done else math.nan), result.test_accuracy, result.steps


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """A run config without its test-set period (which does not change the run)."""
    out = copy.deepcopy(rec.clean(config))
    out["federation"].pop("eval_every", None)
    return dict(out)


def _run_key(config: Mapping[str, Any]) -> str:
    """Two full runs are the same run when their configs are equal but for the seed and the
    test-set period: this key (canonical JSON) is equal exactly then."""
    out = _comparable(dict(config))
    out.pop("seed", None)
    return json.dumps(out, sort_keys=True)


def _trial_key(space: SearchSpace, trial: FrozenTrial) -> str:
    return _run_key(full_config(space.base, trial.params).to_dict())


def _stored_runs(stored: Mapping[int, Mapping[str, Any]]) -> dict[RunKey, Run]:
    """The full runs earlier promotions stored, by (config key, seed). Entries stored without
    their config (by earlier fedhpo versions) are left out: nothing says which run they were."""
    out: dict[RunKey, Run] = {}
    for entry in stored.values():
        config, columns = entry.get("config"), [entry.get(k) for k in _RUN_COLUMNS]
        lists = [c for c in columns if isinstance(c, list)]
        whole = len(lists) == len(_RUN_COLUMNS) and len({len(c) for c in lists}) == 1
        if not isinstance(config, Mapping) or not whole:
            continue
        key = _run_key(config)
        for seed, value, test, cost in zip(*lists, strict=True):
            out[(key, int(seed))] = (_number(value), _number(test), int(cost or 0))
    return out


def _number(value: float | None) -> float:
    """A stored metric (None where it was nan)."""
    return math.nan if value is None else float(value)


def _own_run(space: SearchSpace, trial: FrozenTrial) -> Run | None:
    """The trial's own run, if it was the full-fidelity run at the base seed.

    Only a complete trial's: a pruned one ran the same config but stopped early (Optuna
    gives it its last reported value), so it is no seed's full run."""
    ran = trial.user_attrs.get(rec.CONFIG)
    if ran is None or trial.value is None or trial.state != TrialState.COMPLETE:
        return None
    full = full_config(space.base, trial.params, space.base.seed).to_dict()
    if _comparable(ran) != _comparable(full):
        return None
    test = (trial.user_attrs.get(rec.FINAL_METRICS) or {}).get("test_accuracy")
    return float(trial.value), math.nan if test is None else float(test), 0


def _summary(seeds: list[int], runs: list[Run], config: RunConfig) -> dict[str, Any]:
    """A promoted config's entry: per seed its value, test accuracy and the client steps its
    run took when it was made (``steps``: their sum), and the config (at the first seed), by
    which a later promotion knows the runs for its own."""
    values = [v for v, _, _ in runs]
    finite = [v for v in values if math.isfinite(v)]
    return {
        "seeds": seeds,
        "values": values,
        "test_accuracy": [t for _, t, _ in runs],
        "run_steps": [s for _, _, s in runs],
        "steps": sum(s for _, _, s in runs),
        "mean": statistics.fmean(finite) if finite else None,
        "std": statistics.stdev(finite) if len(finite) > 1 else 0.0,
        "config": config.to_dict(),
    }


def promotion_reserve(
    space: SearchSpace,
    promote_top: int,
    seeds: int,
    full_steps: int,
    study: optuna.Study | None = None,
) -> int:
    """Client steps a search leaves for ``--promote promote_top --seeds seeds``: the other
    seeds of the top configs at a base run each (they are not known yet), and every seed of
    the base config at its own cost (under the default schedule the search stopped it at the
    first rung; another seed samples other cohorts, whose clients hold more or fewer rows),
    but for the base config's runs that ``study`` already holds (stored by an earlier
    promotion, or the base-config trial's own full run), which promotion reuses."""
    if promote_top <= 0:
        return 0
    dataset = cached_dataset(space.base.data)
    first = space.base.seed
    known: set[RunKey] = set()
    if study is not None:
        known = set(_stored_runs(rec.promotions(study)))
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.user_attrs.get(rec.ORIGIN) and _own_run(space, t) is not None:
                known.add((_trial_key(space, t), first))
    key = _run_key(full_config(space.base, {}).to_dict())
    base = sum(
        run_steps(full_config(space.base, {}, first + i), dataset)
        for i in range(seeds)
        if (key, first + i) not in known
    )
    return promote_top * max(0, seeds - 1) * full_steps + base


def promote(
    space: SearchSpace,
    opts: TuneOptions,
    log: Callable[[str], None] = print,
    run: Simulate = simulate,
    steps_left: int | None = None,
) -> Promotion:
    """Re-run the top ``opts.promote`` trials (and the base-config trial) at full fidelity
    with ``opts.seeds`` seeds each, the (config, seed) runs spread over ``opts.jobs``
    processes. A run the study already holds (a complete trial's own full run, or one an
    earlier promotion stored for the same config and seed) is reused, at no cost.

    With ``steps_left`` (what the budget has left, in client steps) only the configs whose
    re-runs fit are promoted, in leaderboard order, each re-run costed in its own steps (a
    config with 4 local epochs costs 4 base runs per seed); the base config, when it is
    added for comparison rather than ranked among the top, only beside a promoted config.
    The others are skipped with a line saying why.

    The results go to the study's ``promotions`` attribute; the leaderboard then ranks by
    their mean, since a single run's score is noisy (and a short run's is biased).
    """
    if space.is_multi_objective:
        raise StudyError("promotion needs a single objective", key="--promote")
    study = optuna.load_study(study_name=opts.study, storage=open_storage(opts.storage))
    board = leaderboard(study)
    if board.empty:
        return Promotion({})
    top = [int(n) for n in board["trial"].head(opts.promote)]
    listed = set(board["trial"])  # complete, or stopped by the budget while ahead
    trials = {
        t.number: t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if t.number in listed or t.user_attrs.get(rec.ORIGIN)
    }
    # The base config is re-run too, so the winner is compared with where the search started;
    # also when the search stopped it (successive halving's first trials stop at the first rung).
    top += [n for n, t in trials.items() if t.user_attrs.get(rec.ORIGIN) and n not in top]
    seeds = [space.base.seed + i for i in range(opts.seeds)]
    stored = rec.promotions(study)
    runs, reused = _known_runs(space, trials, top, seeds, _stored_runs(stored))
    jobs = [(n, seed) for n in top for seed in seeds if (n, seed) not in runs]
    if steps_left is not None:
        top = _affordable(space, trials, top, jobs, steps_left, log, opts.promote)
        jobs = [j for j in jobs if j[0] in top]
    if not top:
        return Promotion({})
    made = _run_all(space, trials, jobs, opts.jobs, run, opts.plugins)
    runs.update(made)
    results = {
        n: _summary(seeds, [runs[(n, s)] for s in seeds], full_config(space.base, trials[n].params))
        for n in top
    }
    for n in top:
        log(_promotion_line(n, trials[n], results[n], reused.get(n, 0)))
    for n, r in results.items():
        r["low_fidelity"] = trials[n].value
    merged = {str(k): v for k, v in stored.items()}
    merged.update({str(k): rec.clean(v) for k, v in results.items()})
    study.set_user_attr(rec.PROMOTIONS, merged)
    return Promotion(results, sum(steps for _, _, steps in made.values()))


def _known_runs(
    space: SearchSpace,
    trials: dict[int, FrozenTrial],
    top: list[int],
    seeds: list[int],
    stored: dict[RunKey, Run],
) -> tuple[dict[tuple[int, int], Run], dict[int, int]]:
    """The (trial, seed) runs of ``top`` the study holds: a trial's own full run, else a
    ``stored`` run of the same config and seed; and how many stored ones each trial reuses."""
    runs: dict[tuple[int, int], Run] = {}
    reused: dict[int, int] = {}
    for n in top:
        own = _own_run(space, trials[n])
        if own is not None:
            runs[(n, space.base.seed)] = own
        key = _trial_key(space, trials[n])
        for seed in seeds:
            if (n, seed) not in runs and (key, seed) in stored:
                runs[(n, seed)] = stored[(key, seed)]
                reused[n] = reused.get(n, 0) + 1
    return runs, reused


def _affordable(
    space: SearchSpace,
    trials: dict[int, FrozenTrial],
    top: list[int],
    jobs: list[tuple[int, int]],
    steps_left: int,
    log: Callable[[str], None],
    ranked: int,
) -> list[int]:
    """The trials of ``top`` whose re-runs fit in ``steps_left`` client steps, taken in order.

    ``top`` is the leaderboard's first ``ranked`` trials, then the base-config trial when it
    is not among them: re-run for comparison, so only beside a promoted config. Ranked among
    the top, the base config is a candidate like the others."""
    dataset = cached_dataset(space.base.data)
    full = run_steps(space.base, dataset)
    left = steps_left
    out: list[int] = []
    for i, n in enumerate(top):
        base = bool(trials[n].user_attrs.get(rec.ORIGIN))
        if i >= ranked and not out:
            continue
        cost = sum(
            run_steps(full_config(space.base, trials[n].params, seed), dataset)
            for m, seed in jobs
            if m == n
        )
        if cost <= left:
            out.append(n)
            left -= cost
        else:
            what = "the base config" if base else f"trial {n}"
            log(
                f"promotion: {what} not re-run: its seeds cost {cost / full:.2f} full runs, "
                f"{max(0, left) / full:.2f} are left of the budget"
            )
    return out


def _batched(metric: str, configs: list[RunConfig]) -> list[Run]:
    """Full runs of ``configs`` in as few vectorized passes as they allow (a worker)."""
    set_threads(1)
    results = run_batch(configs, cached_dataset(configs[0].data))
    return [
        (r.metric(metric) if r.status == "completed" else math.nan, r.test_accuracy, r.steps)
        for r in results
    ]


def _run_all(
    space: SearchSpace,
    trials: dict[int, FrozenTrial],
    jobs: list[tuple[int, int]],
    workers: int,
    run: Simulate,
    plugins: tuple[str, ...] = (),
) -> dict[tuple[int, int], Run]:
    """The (trial, seed) runs; with the real simulator, configs sharing a seed and a batch
    schedule train together (:func:`~fedhpo.sim.batch.run_batch`), split over ``workers``."""
    if run is not simulate:
        return {j: _full_run(space, trials[j[0]].params, j[1], run) for j in jobs}
    metric = space.objectives[0].metric
    groups: dict[str, list[tuple[int, int]]] = {}
    for j in jobs:
        groups.setdefault(batch_key(full_config(space.base, trials[j[0]].params, j[1])), []).append(
            j
        )
    parts = [g[i::workers] for g in groups.values() for i in range(min(workers, len(g)))]
    configs = [[full_config(space.base, trials[n].params, s) for n, s in part] for part in parts]
    if workers > 1 and len(parts) > 1:
        done = _in_pool(workers, metric, configs, plugins)
    else:
        done = [_batched(metric, c) for c in configs]
    return {
        j: r
        for part, runs in zip(parts, done, strict=True)
        for j, r in zip(part, runs, strict=True)
    }


def _in_pool(
    workers: int, metric: str, configs: list[list[RunConfig]], plugins: tuple[str, ...]
) -> list[list[Run]]:
    """:func:`_batched` on each part of ``configs`` in ``workers`` processes.

    A Ctrl-C is the parent's alone: the processes start with the stop signals blocked (the
    parent's mask while it starts them, so also while they import torch) and ignore SIGINT;
    the parent gets a Ctrl-C that came meanwhile as the block ends, and on any exception it
    stops them, where leaving the pool would wait for their runs to end."""
    spawn = mp.get_context("spawn")  # the pool's processes import the plugins themselves
    pool = ProcessPoolExecutor(
        workers, mp_context=spawn, initializer=_start_worker, initargs=(plugins,)
    )
    try:
        with stop_signals_held():  # map() submits every part: the processes start now
            results = pool.map(_batched, [metric] * len(configs), configs)
        done = list(results)
    except BaseException:
        stop_pool(pool)
        raise
    pool.shutdown()
    return done


def _start_worker(plugins: tuple[str, ...]) -> None:
    """A promotion process: Ctrl-C is the parent's to handle (ignored here, with any that
    came while it started, held back since: :func:`stop_signals_held`); SIGTERM, which the
    parent stops it with, is let in; import the plugins."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    load_plugins(plugins)


def _promotion_line(number: int, trial: FrozenTrial, r: dict[str, Any], reused: int = 0) -> str:
    mean = "nan" if r["mean"] is None else f"{r['mean']:.4f}"
    value = "none (pruned)" if trial.value is None else f"{trial.value:.4f}"
    again = ""
    if reused:
        again = f" ({reused} stored run{'s' if reused > 1 else ''} reused)"
    return (
        f"promoted trial {number}: trial value {value} -> full fidelity "
        f"{mean} ± {r['std']:.4f} over {len(r['seeds'])} seeds{again}"
    )
