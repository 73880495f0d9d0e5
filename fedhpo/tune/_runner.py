"""The study runner: create or resume a study, run trials in N processes, promote the top."""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing as mp
import shlex
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from fedhpo import __version__
from fedhpo.errors import StudyError, show_note
from fedhpo.plugins import load_plugins
from fedhpo.sim.sampling import derive_seed
from fedhpo.sim.threads import set_threads
from fedhpo.space import SearchSpace, grid_search_space
from fedhpo.store import Liveness, RetryPolicy, check_study_name, open_storage, storage_flag
from fedhpo.store import records as rec
from fedhpo.store.budget import Budget, SessionLock, done, load_budget, retried, save_budget
from fedhpo.store.lock import StudyLock
from fedhpo.store.retry import warn
from fedhpo.tune._baseline import ORIGIN, base_point
from fedhpo.tune._calibrate import POINTS, check_fidelity, design
from fedhpo.tune._factories import make_sampler
from fedhpo.tune._fidelity import Schedule, make_pruner, schedule
from fedhpo.tune._objective import (
    Objective,
    Simulate,
    cached_dataset,
    simulate,
    simulate_batch,
)
from fedhpo.tune._signals import Forwarder, Stopper, ignore_stop_signals, job_signals
from fedhpo.tune._worker import (
    OnTrial,
    Worker,
    WorkerReport,
    budget_left,
    identity,
    reap,
    session_outcome,
)

#: ``progress(done, total, best, share)`` as trials of this session finish: trials done, the
#: trials asked for (0: no count, a budget), the best value so far, and the share of the
#: session's compute budget its trials have spent (None without a budget).
Progress = Callable[[int, int, "float | None", "float | None"], None]


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
    plugins: tuple[str, ...] = ()
    """Modules every job process imports (``--plugin``)."""
    liveness: Liveness = Liveness()
    retry: RetryPolicy = RetryPolicy()
    session: int = 0
    """Which ``fedhpo tune`` session on the study this is (0: the first): sessions, one after
    the other, draw their own proposals (:func:`hold_session`)."""


#: The owner records of the ``fedhpo tune`` sessions this process holds, by (storage, study).
_HELD: dict[tuple[str, str], dict[str, Any]] = {}


def _session_key(storage: str | optuna.storages.BaseStorage, study: str) -> tuple[str, str]:
    return (storage if isinstance(storage, str) else f"<storage {id(storage)}>", study)


@contextlib.contextmanager
def hold_session(opts: TuneOptions, study: optuna.Study) -> Iterator[int]:
    """Hold the study for this ``fedhpo tune`` session while the body runs, and give its
    number, for the sampler seeds of its jobs. One session at a time sets a study's budget,
    which its workers share: a second one while this runs, in this process or another, is a
    StudyError pointing to ``fedhpo worker`` (:class:`SessionLock`)."""
    key = _session_key(opts.storage, opts.study)
    lock = SessionLock(opts.storage, opts.study)
    if key in _HELD or not lock.acquire():
        raise _busy(opts.storage, opts.study, study)
    try:
        with StudyLock(opts.storage, opts.study, opts.retry).held():
            session = int(study.user_attrs.get(rec.SESSIONS, 0))
            study.set_user_attr(rec.SESSIONS, session + 1)
            owner = {"session": session, **identity()}
            budget = load_budget(study)
            if budget is not None:  # named as its owner at once (a new study's comes next)
                save_budget(study, dataclasses.replace(budget, owner=owner))
        _HELD[key] = owner
        yield session
    finally:
        _HELD.pop(key, None)
        lock.release()


def _check_free(storage: str | optuna.storages.BaseStorage, name: str, study: optuna.Study) -> None:
    """StudyError if another process's ``fedhpo tune`` session holds the study now."""
    if _session_key(storage, name) in _HELD:
        return  # this process's own session
    lock = SessionLock(storage, name)
    if not lock.acquire():
        raise _busy(storage, name, study)
    lock.release()


def _busy(storage: str | optuna.storages.BaseStorage, name: str, study: optuna.Study) -> StudyError:
    owner = (load_budget(study) or Budget()).owner or {}
    who = ""
    if {"session", "host", "pid"} <= owner.keys():
        who = f" (session {owner['session']}, {owner['host']}:{owner['pid']})"
    return StudyError(
        f"study {name!r} is being tuned by another `fedhpo tune`{who}: one session at a time "
        "sets a study's budget; to add processes to that search, join it with `fedhpo worker "
        f"--study {shlex.quote(name)}{_flag(storage)}`, or run this when it has ended",
        key="--study",
    )


def _flag(storage: str | optuna.storages.BaseStorage) -> str:
    """`` --storage URL`` of a suggested command (none for a storage object)."""
    return storage_flag(storage) if isinstance(storage, str) else ""


def _directions(space: SearchSpace) -> list[str]:
    return [str(o.direction) for o in space.objectives]


def _comparable(space: dict[str, Any]) -> dict[str, Any]:
    """A stored space without where it was read from (a resume may run from elsewhere)."""
    return rec.clean({k: v for k, v in space.items() if k not in ("source", "base_path")})


def create_or_resume(space: SearchSpace, opts: TuneOptions) -> optuna.Study:
    """Open the study (creating it and recording the space), checking a resumed one matches.

    Under the study lock: two workers starting at once create (and enqueue) it once.
    """
    check_study_name(opts.study)
    storage = open_storage(opts.storage)  # an unreachable database is one clear error here
    with StudyLock(opts.storage, opts.study).held():
        return _create_or_resume(space, opts, storage)


def check_resumable(
    space: SearchSpace, storage: str | optuna.storages.BaseStorage, name: str
) -> None:
    """StudyError now, before any work, for what :func:`create_or_resume` would refuse: a
    storage that cannot be opened, or a study ``name`` there that this space cannot resume;
    and for what :func:`hold_session` would: a study another session is tuning now.
    Writes no study (a new SQLite file is made, as ``fedhpo tune`` would next)."""
    handle = open_storage(storage)
    if name in set(optuna.get_all_study_names(handle)):
        study = optuna.load_study(study_name=name, storage=handle)
        _check_same(space, name, study)
        _check_free(storage, name, study)


def _check_same(space: SearchSpace, name: str, study: optuna.Study) -> None:
    """StudyError unless ``study`` is a fedhpo study of ``space`` (its directions too)."""
    recorded = study.user_attrs.get(rec.SPACE)
    if recorded is None:  # made by plain Optuna, or another tool: not ours to add to
        raise StudyError(
            f"study {name!r} was not made by fedhpo (no search space recorded); "
            "give another --study NAME",
            key="--study",
        )
    if _comparable(recorded) != _comparable(space.to_dict()):
        raise StudyError(
            f"study {name!r} was made with a different search space; "
            "resume it with the same space file or start a new one with --study NAME",
            key="--study",
        )
    if [d.name.lower() for d in study.directions] != _directions(space):
        raise StudyError(f"study {name!r} has other objective directions", key="--study")


def _create_or_resume(
    space: SearchSpace, opts: TuneOptions, storage: optuna.storages.BaseStorage
) -> optuna.Study:
    existing = set(optuna.get_all_study_names(storage))
    if opts.study in existing:
        study = optuna.load_study(study_name=opts.study, storage=storage)
        _check_same(space, opts.study, study)
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
        # Trial 0 runs the base config itself: the study records where the search started.
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
    """Calibrate only when asked (``tuner.calibrate: true``) and single-objective: at B = 10 the
    quality benchmark found the check's full runs better spent on search (README, "The
    default search")."""
    return bool(space.tuner.calibrate) and not space.is_multi_objective


def start_budget(
    space: SearchSpace,
    opts: TuneOptions,
    study: optuna.Study,
    before: frozenset[int] = frozenset(),
    begin: bool = True,
) -> Budget:
    """Record this session's budget on the study, shared by all its workers: ``opts.trials``
    more trials in total (at most the rest of the grid; queued and running trials are among
    them), the ``opts.limit_steps`` client steps of the trials not in ``before``, and the
    timeout from now (``begin``) or from when the first worker starts. StudyError if another
    session is tuning the study (its workers share the budget this would replace)."""
    _check_free(opts.storage, opts.study, study)
    owner = _HELD.get(_session_key(opts.storage, opts.study))
    with StudyLock(opts.storage, opts.study, opts.retry).held():
        trials = study.get_trials(deepcopy=False)
        total = None
        if opts.trials is not None:
            total = done(trials) + opts.trials
            if space.tuner.sampler == "grid":
                total = min(total, len(grid_search_space(space).configs))
        steps = None
        if opts.limit_steps is not None:
            steps = sum(rec.trial_steps(t) for t in trials if t.number in before)
            steps += opts.limit_steps
        started = time.time() if begin and opts.timeout is not None else None
        budget = Budget(total, opts.timeout, started, steps, owner)
        save_budget(study, budget)
    return budget


def _load_for_worker(space: SearchSpace, opts: TuneOptions, worker: int) -> optuna.Study:
    """The study with this worker's sampler and pruner (seeds differ per worker and resume)."""
    storage = open_storage(opts.storage, liveness=opts.liveness, retry=opts.retry)
    probe = optuna.load_study(study_name=opts.study, storage=storage)
    offset = len(probe.get_trials(deepcopy=False))
    path = (offset, worker) if opts.session == 0 else (offset, worker, opts.session)
    seed = derive_seed(space.tuner.seed, *path) % (2**31)
    grid = grid_search_space(space) if space.tuner.sampler == "grid" else None
    return optuna.load_study(
        study_name=opts.study,
        storage=storage,
        sampler=make_sampler(space.tuner.sampler, seed, grid=grid),
        pruner=_pruner(probe, schedule(space, opts.min_rounds)),
    )


def _pruner(study: optuna.Study, sched: Schedule) -> optuna.pruners.BasePruner:
    """The schedule's pruner for ``study``: its trial budget, shared by every worker and
    session (``fedhpo worker`` has no count of its own), caps the first rung's sample."""
    return make_pruner(sched, (load_budget(study) or Budget()).trials)


class CheckGate:
    """Holds a worker's search trials back until the study's fidelity check is measured.

    ``fedhpo tune`` runs the check's trials as a phase of their own and records the check
    before the search starts; workers of a study made with ``--create-only`` have no such
    phase. They run the check's queued trials first (queued trials are claimed first), wait
    while others run, then the first to find them all finished measures the check and
    records it (under the study lock, so once), and every worker switches its pruner and
    objective to the chosen first rung.
    """

    def __init__(
        self, space: SearchSpace, objective: Objective, log: Callable[[str], None] = print
    ) -> None:
        self.space = space
        self.objective = objective
        self.log = log
        self.pending = wants_calibration(space)

    def __call__(self, study: optuna.Study, trials: list[FrozenTrial]) -> bool:
        if not self.pending:
            return False
        recorded = rec.fidelity_check(study)
        if recorded is None:
            runs = [t for t in trials if t.user_attrs.get(rec.CALIBRATION)]
            if any(t.state == TrialState.WAITING for t in runs):
                return False  # claim one of them
            if any(t.state == TrialState.RUNNING for t in runs):
                return True
            check = check_fidelity(study, self.space, schedule(self.space).report_every)
            if check is not None:
                study.set_user_attr(rec.FIDELITY_CHECK, rec.clean(check.to_dict()))
                self.log(check.message)
                recorded = check.to_dict()
        self.pending = False
        if recorded is not None:
            sched = schedule(self.space, recorded.get("chosen"))
            study.pruner = _pruner(study, sched)
            self.objective.schedule = sched
        return False


def work(
    space: SearchSpace,
    opts: TuneOptions,
    worker: int,
    on_trial: OnTrial | None = None,
    run: Simulate = simulate,
    stopper: Stopper | None = None,
) -> WorkerReport:
    """Run trials of the study in this process until its budget is used (see ``Worker``;
    ``stopper``: a job process's own handling of the stop signals)."""
    set_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _load_for_worker(space, opts, worker)
    lock = StudyLock(opts.storage, opts.study, opts.retry)
    batched = simulate_batch if run is simulate else None
    objective = Objective(space, opts.min_rounds, run, batched)
    gate = CheckGate(space, objective) if opts.min_rounds is None else None
    # the fidelity check's full runs, shared out over the jobs, each share in one pass
    batch = -(-POINTS // max(1, opts.jobs))
    return Worker(study, lock, objective, on_trial, gate, batch, stopper).run()


def _worker_main(space: SearchSpace, opts: TuneOptions, worker: int) -> None:
    """Entry point of a job process (spawned: it imports the command line's plugins itself).

    A stop signal, its parent's or a terminal's, however many come, fails its trial cleanly
    and queues it again; the exit code is 0 (:class:`~fedhpo.tune._signals.Forwarder`). The
    base config's data is built quietly: its notes (rows dropped, say) were printed by the
    parent, which built it first; notes of other data (a space over ``data.*``) print as the
    parent's do, one plain line each."""
    stopper = Stopper(repeats_raise=False)
    job_signals(stopper)
    if not stopper.requested:  # else stopped while it started: nothing to do
        warnings.showwarning = show_note
        load_plugins(opts.plugins)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cached_dataset(space.base.data)
        work(space, opts, worker, stopper=stopper)
    ignore_stop_signals()


def _best(study: optuna.Study) -> float | None:
    if len(study.directions) > 1:
        return None
    try:
        return study.best_value
    except ValueError:
        return None


def _finished(study: optuna.Study) -> set[int]:
    return _finished_of(study.get_trials(deepcopy=False))


def _finished_of(trials: list[FrozenTrial]) -> set[int]:
    return {t.number for t in trials if t.state.is_finished()} - retried(trials)


def run_trials(
    space: SearchSpace,
    opts: TuneOptions,
    progress: Progress | None = None,
    run: Simulate = simulate,
    before: frozenset[int] | None = None,
) -> None:
    """Run ``opts.trials`` new trials in total (or until ``opts.limit_steps`` is spent by the
    trials not in ``before``) in ``opts.jobs`` processes against one study. ``run`` makes each
    trial's run; another than the default needs ``jobs=1``. A timeout counts from when the
    first worker starts (job processes may take longer than it to start).

    Raises StudyError if every trial of the session failed (naming the first error), or if
    job processes died before the budget was used; KeyboardInterrupt once a stop signal has
    stopped the workers (their trials failed cleanly and queued again).
    """
    study = create_or_resume(space, opts)
    start = _finished(study)
    if before is None:
        before = frozenset(
            t.number for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING
        )
    start_budget(space, opts, study, before, begin=False)
    total = opts.trials or 0

    def report() -> None:
        if progress:
            trials = study.get_trials(deepcopy=False)
            done = len(_finished_of(trials) - start)
            share = None
            if opts.limit_steps:
                spent = sum(rec.trial_steps(t) for t in trials if t.number not in before)
                share = spent / opts.limit_steps
            progress(done, total, _best(study), share)

    if opts.jobs <= 1:
        if work(space, opts, 0, lambda _s, _t: report(), run).interrupted:
            raise KeyboardInterrupt
    elif run is not simulate:
        raise StudyError("a custom trial runner needs jobs=1", key="--jobs")
    else:
        _run_jobs(space, opts, study, report)
    _check_session(study, start, opts.storage)


def _check_session(
    study: optuna.Study, before: set[int], storage: str | optuna.storages.BaseStorage
) -> None:
    """StudyError if the session failed or stopped short of its budget; else a line on
    what it leaves unfinished: trials running elsewhere, trials queued for the next session,
    or no trial at all because the timeout passed first."""
    failed = session_outcome(study, before)
    if failed is not None:
        raise failed
    left = budget_left(study)
    if left is not None:
        raise StudyError(
            f"the search stopped short: {left}; resume it with the same command or join it "
            f"with `fedhpo worker --study {shlex.quote(study.study_name)}{_flag(storage)}`"
        )
    trials = study.get_trials(deepcopy=False)
    running = [t for t in trials if t.state == TrialState.RUNNING]
    if running:
        who = sorted({_worker_name(t) for t in running})
        warn(
            f"trial(s) {[t.number for t in running]} still running (worker {', '.join(who)}), "
            "left to their workers; one whose worker is gone is failed and queued again once "
            "its heartbeat is older than the grace period"
        )
    queued = [t.number for t in trials if t.state == TrialState.WAITING]
    if queued:
        warn(f"trial(s) {queued} queued: they run first when the search is resumed")
    budget = load_budget(study) or Budget()
    if budget.timeout is not None and budget.expired() and not _finished_of(trials) - before:
        warn(f"no trial ran: the timeout ({budget.timeout:g} s) passed before one started")


def _worker_name(trial: FrozenTrial) -> str:
    who = trial.user_attrs.get(rec.WORKER) or {}
    return f"{who.get('host', '?')}:{who.get('pid', '?')}"


def _run_jobs(
    space: SearchSpace, opts: TuneOptions, study: optuna.Study, report: Callable[[], None]
) -> None:
    """``opts.jobs`` spawned processes run the same worker loop. A job that dies has its
    running trials failed and queued again at once (its parent knows it died; other workers
    would wait for its heartbeat to go stale), so the others run them. Stop signals go on to
    every job; once the jobs have queued their trials again, KeyboardInterrupt."""
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_worker_main, args=(space, opts, w), daemon=True)
        for w in range(opts.jobs)
    ]
    lock = StudyLock(opts.storage, opts.study, opts.retry)
    dead: dict[int, list[int]] = {}  # job pid -> its trials failed and queued again
    with Forwarder().installed() as forward:
        for p in procs:
            forward.start(p)
        while True:
            running = [p for p in procs if p.is_alive()]
            for p in procs:
                if p.pid is not None and p.exitcode not in (None, 0) and p.pid not in dead:
                    dead[p.pid] = _reap_job(study, lock, p)
            if not running:
                break
            time.sleep(0.5)
            report()
        for p in procs:
            p.join()
    report()
    for pid, numbers in dead.items():
        code = next(p.exitcode for p in procs if p.pid == pid)
        warn(f"job process {pid} stopped with exit code {code}; {_reaped(numbers)}")
    if forward.requested:
        raise KeyboardInterrupt


def _reap_job(study: optuna.Study, lock: StudyLock, job: mp.process.BaseProcess) -> list[int]:
    """Fail the dead ``job``'s running trials and queue them again."""
    assert job.pid is not None
    why = f"its job process {job.pid} died (exit code {job.exitcode}); queued again"
    return reap(study, lock, {**identity(), "pid": job.pid}, why)


def _reaped(numbers: list[int]) -> str:
    if not numbers:
        return "it was running no trial"
    if len(numbers) == 1:
        return f"its trial {numbers[0]} was failed and queued again"
    return f"its trials {numbers} were failed and queued again"
