"""The study runner: create or resume a study, run trials in N processes, promote the top."""

from __future__ import annotations

import math
import multiprocessing as mp
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from fedhpo import __version__
from fedhpo.errors import StudyError
from fedhpo.plugins import load_plugins
from fedhpo.sim.engine import run_simulation
from fedhpo.sim.sampling import derive_seed
from fedhpo.space import SearchSpace, grid_search_space
from fedhpo.store import Liveness, RetryPolicy, leaderboard, open_storage
from fedhpo.store import _records as rec
from fedhpo.store._budget import Budget, retried, save_budget, used
from fedhpo.store._lock import StudyLock
from fedhpo.store._retry import warn
from fedhpo.tune._baseline import ORIGIN, base_point
from fedhpo.tune._factories import make_pruner, make_sampler
from fedhpo.tune._fidelity import full_config
from fedhpo.tune._objective import Objective, cached_dataset
from fedhpo.tune._worker import OnTrial, Worker, WorkerReport, budget_left, session_outcome

#: ``progress(done, total, best)`` after each finished trial of this session.
Progress = Callable[[int, int, "float | None"], None]


@dataclass(frozen=True)
class TuneOptions:
    """How to run a search (the space file says what to search)."""

    storage: str
    study: str
    trials: int
    jobs: int = 1
    timeout: float | None = None
    promote: int = 0
    seeds: int = 3
    plugins: tuple[str, ...] = ()  # imported by every job process
    liveness: Liveness = Liveness()
    retry: RetryPolicy = RetryPolicy()


def _directions(space: SearchSpace) -> list[str]:
    return [str(o.direction) for o in space.objectives]


def _comparable(space: dict[str, Any]) -> dict[str, Any]:
    """A stored space without where it was read from (a resume may run from elsewhere)."""
    return rec.clean({k: v for k, v in space.items() if k not in ("source", "base_path")})


def create_or_resume(space: SearchSpace, opts: TuneOptions) -> optuna.Study:
    """Open the study (creating it and recording the space), checking a resumed one matches.

    Under the study lock: two workers starting at once create (and enqueue) it once.
    """
    with StudyLock(opts.storage, opts.study, opts.retry).held():
        return _create_or_resume(space, opts)


def _create_or_resume(space: SearchSpace, opts: TuneOptions) -> optuna.Study:
    storage = open_storage(opts.storage)
    existing = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    if opts.study in existing:
        study = optuna.load_study(study_name=opts.study, storage=storage)
        recorded = study.user_attrs.get(rec.SPACE)
        if recorded is not None and _comparable(recorded) != _comparable(space.to_dict()):
            raise StudyError(
                f"study {opts.study!r} was made with a different search space; "
                "resume it with the same space file or start a new one with --study NAME",
                key="--study",
            )
        if [d.name.lower() for d in study.directions] != _directions(space):
            raise StudyError(f"study {opts.study!r} has other objective directions", key="--study")
        return study
    directions = [optuna.study.StudyDirection[d.upper()] for d in _directions(space)]
    study = optuna.create_study(storage=storage, study_name=opts.study, directions=directions)
    study.set_user_attr(rec.VERSION, __version__)
    study.set_user_attr(rec.SPACE, rec.clean(space.to_dict()))
    study.set_user_attr(rec.SPACE_FILE, space.source)
    if Path(space.source).is_file():
        study.set_user_attr(rec.SPACE_TEXT, Path(space.source).read_text(encoding="utf-8"))
    study.set_user_attr(rec.BASE_CONFIG, rec.clean(space.base.to_dict()))
    study.set_user_attr(
        rec.OBJECTIVES, [{"metric": o.metric, "direction": o.direction} for o in space.objectives]
    )
    baseline = base_point(space)
    if baseline is not None and space.tuner.sampler != "grid":
        # Trial 0 runs the base config itself: the leaderboard shows where the search started.
        study.enqueue_trial(baseline, user_attrs={ORIGIN: "base config"})
    return study


def start_budget(
    space: SearchSpace, opts: TuneOptions, study: optuna.Study, begin: bool = True
) -> Budget:
    """Record this session's budget on the study: ``opts.trials`` more trials in total over
    all workers (at most the rest of the grid), and the timeout from now (``begin``) or from
    when the first worker starts. Queued trials (the base config of a new study, retries)
    are among the new ones."""
    with StudyLock(opts.storage, opts.study, opts.retry).held():
        trials = study.get_trials(deepcopy=False)
        total = used([t for t in trials if t.state != TrialState.WAITING]) + opts.trials
        if space.tuner.sampler == "grid":
            total = min(total, math.prod(len(v) for v in grid_search_space(space).values()))
        started = time.time() if begin and opts.timeout is not None else None
        budget = Budget(trials=total, timeout=opts.timeout, started=started)
        save_budget(study, budget)
    return budget


def _load_for_worker(space: SearchSpace, opts: TuneOptions, worker: int) -> optuna.Study:
    """The study with this worker's sampler and pruner (seeds differ per worker and resume)."""
    storage = open_storage(opts.storage, liveness=opts.liveness, retry=opts.retry)
    probe = optuna.load_study(study_name=opts.study, storage=storage)
    offset = len(probe.get_trials(deepcopy=False))
    seed = derive_seed(space.tuner.seed, offset, worker) % (2**31)
    grid = grid_search_space(space) if space.tuner.sampler == "grid" else None
    fidelity = space.config_for({}).federation
    return optuna.load_study(
        study_name=opts.study,
        storage=storage,
        sampler=make_sampler(space.tuner.sampler, seed, grid=grid),
        pruner=make_pruner(space.tuner.pruner or "none", fidelity.rounds, fidelity.eval_every),
    )


def work(
    space: SearchSpace, opts: TuneOptions, worker: int, on_trial: OnTrial | None = None
) -> WorkerReport:
    """Run trials of the study in this process until its budget is used (see ``Worker``)."""
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _load_for_worker(space, opts, worker)
    lock = StudyLock(opts.storage, opts.study, opts.retry)
    return Worker(study, lock, Objective(space), on_trial).run()


def _worker_main(space: SearchSpace, opts: TuneOptions, worker: int) -> None:
    """Entry point of a job process (spawned: it imports the command line's plugins itself)."""
    load_plugins(opts.plugins)
    work(space, opts, worker)  # a stop signal fails its trial cleanly; the exit code is 0


def _best(study: optuna.Study) -> float | None:
    if len(study.directions) > 1:
        return None
    try:
        return study.best_value
    except ValueError:
        return None


def _finished(study: optuna.Study) -> set[int]:
    trials = study.get_trials(deepcopy=False)
    return {t.number for t in trials if t.state.is_finished()} - retried(trials)


def run_trials(space: SearchSpace, opts: TuneOptions, progress: Progress | None = None) -> None:
    """Run ``opts.trials`` new trials in total, in ``opts.jobs`` processes, against one study.

    Raises StudyError if every trial of the session failed (naming the first error), or if
    job processes died before the budget was used.
    """
    study = create_or_resume(space, opts)
    before = _finished(study)
    budget = start_budget(space, opts, study)

    def report() -> None:
        if progress:
            done = len(_finished(study) - before)
            progress(done, max(opts.trials, done), _best(study))

    if opts.jobs <= 1:
        if work(space, opts, 0, on_trial=lambda _s, _t: report()).interrupted:
            raise KeyboardInterrupt
    else:
        _run_jobs(space, opts, report)
    _check_session(study, before, budget)


def _check_session(study: optuna.Study, before: set[int], budget: Budget) -> None:
    failed = session_outcome(study, before)
    if failed is not None:
        raise failed
    left = budget_left(study)
    if left is not None and not budget.expired():
        raise StudyError(
            f"the search stopped short: {left}; resume it with the same command or join it "
            f"with `fedhpo worker --study {study.study_name} --storage URL`"
        )


def _run_jobs(space: SearchSpace, opts: TuneOptions, report: Callable[[], None]) -> None:
    """``opts.jobs`` spawned processes run the same worker loop; a killed one's trial is
    retried by the others."""
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_worker_main, args=(space, opts, w), daemon=True)
        for w in range(opts.jobs)
    ]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(0.5)
            report()
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        raise
    finally:
        for p in procs:
            p.join()
    report()
    for p in procs:
        if p.exitcode != 0:
            warn(
                f"job process {p.pid} stopped with exit code {p.exitcode}; a trial it was "
                "running is failed and retried once its heartbeat is stale"
            )


def _full_run(space: SearchSpace, params: dict[str, Any], seed: int) -> tuple[float, float]:
    """One full-fidelity run: (objective value, test accuracy); nan if it did not complete."""
    torch.set_num_threads(1)
    config = full_config(space.base, params, seed)
    result = run_simulation(config, cached_dataset(config.data))
    value = result.metric(space.objectives[0].metric)
    return (value if result.status == "completed" else math.nan), result.test_accuracy


def _summary(seeds: list[int], runs: list[tuple[float, float]]) -> dict[str, Any]:
    values = [v for v, _ in runs]
    finite = [v for v in values if math.isfinite(v)]
    return {
        "seeds": seeds,
        "values": values,
        "test_accuracy": [t for _, t in runs],
        "mean": statistics.fmean(finite) if finite else None,
        "std": statistics.stdev(finite) if len(finite) > 1 else 0.0,
    }


def promote(
    space: SearchSpace, opts: TuneOptions, log: Callable[[str], None] = print
) -> dict[int, dict[str, Any]]:
    """Re-run the top ``opts.promote`` trials (and the base-config trial) at full fidelity
    with ``opts.seeds`` seeds each, the (config, seed) runs spread over ``opts.jobs`` processes.

    The results go to the study's ``promotions`` attribute; the leaderboard then ranks by
    their mean, since low-fidelity scores are noisy.
    """
    if space.is_multi_objective:
        raise StudyError("promotion needs a single objective", key="--promote")
    study = optuna.load_study(study_name=opts.study, storage=open_storage(opts.storage))
    board = leaderboard(study)
    if board.empty:
        return {}
    top = [int(n) for n in board["trial"].head(opts.promote)]
    trials = {t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    # The base config is re-run too, so the winner is compared with where the search started.
    top += [n for n, t in trials.items() if t.user_attrs.get(ORIGIN) and n not in top]
    seeds = [space.base.seed + i for i in range(opts.seeds)]
    jobs = [(n, seed) for n in top for seed in seeds]
    runs: dict[tuple[int, int], tuple[float, float]] = {}
    if opts.jobs > 1:
        spawn = mp.get_context("spawn")
        with ProcessPoolExecutor(
            opts.jobs, mp_context=spawn, initializer=load_plugins, initargs=(opts.plugins,)
        ) as pool:
            futures = {j: pool.submit(_full_run, space, trials[j[0]].params, j[1]) for j in jobs}
            runs = {j: f.result() for j, f in futures.items()}
    else:
        runs = {j: _full_run(space, trials[j[0]].params, j[1]) for j in jobs}
    results = {n: _summary(seeds, [runs[(n, s)] for s in seeds]) for n in top}
    for n in top:
        log(_promotion_line(n, trials[n], results[n]))
    for n, r in results.items():
        r["low_fidelity"] = trials[n].value
    merged = {str(k): v for k, v in rec.promotions(study).items()}
    merged.update({str(k): rec.clean(v) for k, v in results.items()})
    study.set_user_attr(rec.PROMOTIONS, merged)
    return results


def _promotion_line(number: int, trial: optuna.trial.FrozenTrial, r: dict[str, Any]) -> str:
    mean = "nan" if r["mean"] is None else f"{r['mean']:.4f}"
    return (
        f"promoted trial {number}: low fidelity {trial.value:.4f} -> full fidelity "
        f"{mean} ± {r['std']:.4f} over {len(r['seeds'])} seeds"
    )
