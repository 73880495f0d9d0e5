"""The study runner: create or resume a study, run trials in N processes, promote the top."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from fedhpo import __version__
from fedhpo.errors import StudyError
from fedhpo.sim.sampling import derive_seed
from fedhpo.space import SearchSpace, grid_search_space
from fedhpo.store import open_storage
from fedhpo.store import records as rec
from fedhpo.tune._baseline import ORIGIN, base_point
from fedhpo.tune._budget import BudgetCallback
from fedhpo.tune._calibrate import POINTS, design
from fedhpo.tune._factories import make_sampler
from fedhpo.tune._fidelity import make_pruner, schedule
from fedhpo.tune._objective import Objective, Simulate, simulate

#: ``progress(done, total, best)`` after each finished trial of this session.
Progress = Callable[[int, int, "float | None"], None]


@dataclass(frozen=True)
class TuneOptions:
    """How to run a search (the space file says what to search)."""

    storage: str | optuna.storages.BaseStorage
    study: str
    trials: int | None
    """New trials; None: until ``limit_steps`` is spent."""
    jobs: int = 1
    timeout: float | None = None
    promote: int = 0
    seeds: int = 2
    limit_steps: int | None = None
    """Stop starting trials once this session's trials took this many client steps."""
    min_rounds: int | None = None
    """The pruner's first rung, when calibration chose it."""


def _directions(space: SearchSpace) -> list[str]:
    return [str(o.direction) for o in space.objectives]


def _comparable(space: dict[str, Any]) -> dict[str, Any]:
    """A stored space without where it was read from (a resume may run from elsewhere)."""
    return rec.clean({k: v for k, v in space.items() if k not in ("source", "base_path")})


def create_or_resume(space: SearchSpace, opts: TuneOptions) -> optuna.Study:
    """Open the study (creating it and recording the space), checking a resumed one matches."""
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
    calibrating = wants_calibration(space)
    if baseline is not None and space.tuner.sampler != "grid":
        # Trial 0 runs the base config itself: the leaderboard shows where the search started.
        attrs: dict[str, Any] = {ORIGIN: "base config"}
        if calibrating:
            attrs[rec.CALIBRATION] = True
        study.enqueue_trial(baseline, user_attrs=attrs)
    if calibrating:
        count = POINTS - (baseline is not None)
        for point in design(space, count, derive_seed(space.tuner.seed, 7)):
            study.enqueue_trial(point, user_attrs={rec.CALIBRATION: True})
    return study


def wants_calibration(space: SearchSpace) -> bool:
    """Calibrate unless told not to, the first rung is given, trials never reach full
    fidelity (then only when asked), or there is nothing to prune."""
    tuner, fid = space.tuner, space.fidelity
    if tuner.calibrate is not None:
        return tuner.calibrate and not space.is_multi_objective
    return (
        not space.is_multi_objective
        and tuner.pruner not in ("none", None)
        and tuner.sampler != "grid"
        and fid.min_rounds is None
        and (fid.rounds is None or fid.rounds >= space.base.federation.rounds)
    )


def _load_for_worker(space: SearchSpace, opts: TuneOptions, worker: int) -> optuna.Study:
    """The study with this worker's sampler and pruner (seeds differ per worker and resume)."""
    storage = open_storage(opts.storage, heartbeat=opts.jobs > 1)
    probe = optuna.load_study(study_name=opts.study, storage=storage)
    offset = len(probe.get_trials(deepcopy=False))
    seed = derive_seed(space.tuner.seed, offset, worker) % (2**31)
    grid = grid_search_space(space) if space.tuner.sampler == "grid" else None
    return optuna.load_study(
        study_name=opts.study,
        storage=storage,
        sampler=make_sampler(space.tuner.sampler, seed, grid=grid),
        pruner=make_pruner(schedule(space, opts.min_rounds)),
    )


def _optimize(
    space: SearchSpace,
    opts: TuneOptions,
    worker: int,
    n_trials: int | None,
    callbacks: list[Any] | None = None,
    run: Simulate = simulate,
    before: frozenset[int] = frozenset(),
) -> None:
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _load_for_worker(space, opts, worker)
    callbacks = list(callbacks or [])
    if opts.limit_steps is not None:
        callbacks.append(BudgetCallback(opts.limit_steps, before))
    study.optimize(
        Objective(space, opts.min_rounds, run),
        n_trials=n_trials,
        timeout=opts.timeout,
        catch=(Exception,),
        callbacks=callbacks,
    )


def _worker_main(
    space: SearchSpace,
    opts: TuneOptions,
    worker: int,
    n_trials: int | None,
    before: frozenset[int],
) -> None:
    """Entry point of a trial process (spawned)."""
    with contextlib.suppress(KeyboardInterrupt):  # the parent reports the interruption
        _optimize(space, opts, worker, n_trials, before=before)


def _shares(total: int | None, jobs: int) -> list[int | None]:
    if total is None:
        return [None] * jobs
    return [total // jobs + (1 if i < total % jobs else 0) for i in range(jobs)]


def _best(study: optuna.Study) -> float | None:
    if len(study.directions) > 1:
        return None
    try:
        return study.best_value
    except ValueError:
        return None


def _finished(study: optuna.Study) -> set[int]:
    return {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}


def run_trials(
    space: SearchSpace,
    opts: TuneOptions,
    progress: Progress | None = None,
    run: Simulate = simulate,
    before: frozenset[int] | None = None,
) -> None:
    """Run ``opts.trials`` new trials (or until ``opts.limit_steps`` is spent by the trials
    not in ``before``) in ``opts.jobs`` processes against one study. ``run`` makes each
    trial's run; another than the default needs ``jobs=1``."""
    study = create_or_resume(space, opts)
    start = _finished(study)
    if before is None:
        before = frozenset(
            t.number for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING
        )
    total = opts.trials or 0

    def report() -> None:
        if progress:
            progress(len(_finished(study) - start), total, _best(study))

    if opts.jobs <= 1:
        callbacks = [lambda _s, _t: report()]
        _optimize(space, opts, 0, opts.trials, callbacks, run, before)
        return
    if run is not simulate:
        raise StudyError("a custom trial runner needs jobs=1", key="--jobs")
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_worker_main, args=(space, opts, w, n, before), daemon=True)
        for w, n in enumerate(_shares(opts.trials, opts.jobs))
        if n is None or n > 0
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
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise StudyError(
            f"{len(failed)} trial process(es) stopped with exit code(s) {failed}; "
            "their error is printed above"
        )
