"""fedhpo.tune: Optuna search over (multi-fidelity) federated runs, with promotion of the best.

The default search of a single objective (what ``fedhpo tune --space FILE`` does): the base
config, then TPE proposals, under successive halving from a ninth of the base config's
rounds to all of them, until a budget of 10 full-run equivalents is spent (trials running
then stop: :class:`fedhpo.tune._budget.BudgetGuard`); the first trials stop at the first
rung as the sample later ones are judged against (:mod:`fedhpo.tune._halving`). The
fidelity check (``tuner.calibrate``, off by default) first runs the base config and a few
space-filling configs to full fidelity and starts the rungs at the cheapest round count
that ranks configs like the full one. ``promote`` (off by default) re-runs the top K and the
base config with more seeds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import optuna
from optuna.trial import TrialState

from fedhpo.errors import StudyError
from fedhpo.space import SearchSpace, load_space
from fedhpo.store import (
    DEFAULT_STORAGE,
    Liveness,
    RetryPolicy,
    check_study_name,
    mask_url,
    open_storage,
)
from fedhpo.store import records as rec
from fedhpo.tune._budget import RunCosts, run_costs, run_steps, spent_steps
from fedhpo.tune._calibrate import FidelityCheck, check_fidelity
from fedhpo.tune._checks import check_runnable
from fedhpo.tune._factories import make_sampler
from fedhpo.tune._fidelity import Schedule, full_config, make_pruner, schedule, trial_config
from fedhpo.tune._join import Joined, join_study, run_worker, stored_study
from fedhpo.tune._objective import Objective, PruningCallback, Simulate, cached_dataset, simulate
from fedhpo.tune._promote import Promotion, promote, promotion_reserve
from fedhpo.tune._runner import (
    Progress,
    TuneOptions,
    check_resumable,
    create_or_resume,
    hold_session,
    run_trials,
    start_budget,
    wants_calibration,
)
from fedhpo.tune._worker import identity

__all__ = [
    "FidelityCheck",
    "Joined",
    "Objective",
    "Promotion",
    "PruningCallback",
    "RunCosts",
    "Schedule",
    "Simulate",
    "TuneOptions",
    "cached_dataset",
    "check_no_trials",
    "check_search_share",
    "check_resumable",
    "check_runnable",
    "full_config",
    "identity",
    "join_study",
    "make_pruner",
    "make_sampler",
    "promote",
    "run_costs",
    "run_steps",
    "run_trials",
    "run_worker",
    "schedule",
    "stored_study",
    "trial_config",
    "tune",
]


def tune(
    space: SearchSpace | str | Path,
    *,
    storage: str | optuna.storages.BaseStorage = DEFAULT_STORAGE,
    study: str | None = None,
    trials: int | None = None,
    budget: float | None = None,
    jobs: int = 1,
    timeout: float | None = None,
    promote_top: int | None = None,
    seeds: int | None = None,
    plugins: Sequence[str] = (),
    liveness: Liveness | None = None,
    retry: RetryPolicy | None = None,
    create_only: bool = False,
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
    run: Simulate = simulate,
) -> optuna.Study:
    """Search ``space`` and return the study; running it again resumes the same study.

    ``trials`` new trials and/or a ``budget`` in full-run equivalents (default: the space's
    ``tuner`` section; giving ``trials`` alone means no budget) in ``jobs`` processes; then
    the top ``promote_top`` configs and the base config are re-run at full fidelity with
    ``seeds`` seeds each. ``run`` replaces the simulator (e.g. the quality benchmark's
    replay of recorded runs; needs ``jobs=1``). The job processes import the ``plugins``
    modules; ``liveness`` and ``retry`` set their heartbeats and database retries.
    ``create_only``: create the study and record its budget for ``fedhpo worker``s (the
    timeout then counts from the first worker's start); run nothing.
    """
    _check_counts(
        budget=budget, trials=trials, jobs=jobs, timeout=timeout, promote_top=promote_top,
        seeds=seeds,
    )  # fmt: skip
    if study is not None:
        check_study_name(study)  # before the data is built
    if not isinstance(space, SearchSpace):
        space = load_space(space)
    check_runnable(space)
    # Build the base data once before touching the database: a missing data file is a clear
    # error here, not a failure in every trial (and the dataset is cached for jobs=1).
    full_steps = run_steps(space.base, cached_dataset(space.base.data))
    if trials is None and budget is None:
        trials, budget = space.tuner.trials, space.tuner.budget
    promote_top = space.tuner.promote or 0 if promote_top is None else promote_top
    seeds = space.tuner.seeds if seeds is None else seeds
    name = study if study is not None else Path(space.source).stem
    if trials == 0:
        check_no_trials(space, storage, name, promote=promote_top, create_only=create_only)
    elif not create_only:
        check_search_share(space, storage, name, budget=budget, promote=promote_top, seeds=seeds)
    opts = TuneOptions(
        storage=storage,
        study=name,
        trials=trials,
        jobs=max(1, jobs),
        timeout=space.tuner.timeout if timeout is None else timeout,
        promote=promote_top,
        seeds=seeds,
        plugins=tuple(plugins),
        liveness=liveness or Liveness(),
        retry=retry or RetryPolicy(),
    )
    handle = create_or_resume(space, opts)
    before = _done_before(handle)
    if create_only:
        limit = None if budget is None else int(budget * full_steps)
        start_budget(space, dataclasses.replace(opts, limit_steps=limit), handle, before, False)
        return optuna.load_study(study_name=name, storage=open_storage(storage))
    with hold_session(opts, handle) as session:  # one tune session of a study at a time
        opts = dataclasses.replace(opts, session=session)
        check = _calibrate(space, opts, handle, progress, log, run, budget, full_steps)
        reserve = promotion_reserve(space, promote_top, seeds, full_steps, handle)
        limit = None if budget is None else int(budget * full_steps) - reserve
        opts = dataclasses.replace(
            opts, limit_steps=limit, min_rounds=None if check is None else check["chosen"]
        )
        done = sum(
            1
            for t in handle.get_trials(deepcopy=False)
            if t.number not in before and t.state.is_finished()
        )
        if opts.trials is not None:
            opts = dataclasses.replace(opts, trials=max(0, opts.trials - done))
        if progress is not None and done:
            progress = _counting_from(progress, done)
        if (opts.trials is None or opts.trials > 0) and (limit is None or limit > 0):
            run_trials(space, opts, progress, run, before)
        promoted = 0
        if promote_top > 0 and not space.is_multi_objective:
            left = (
                None if budget is None else int(budget * full_steps) - spent_steps(handle, before)
            )
            promoted = promote(space, opts, log, run, left).steps
        result = optuna.load_study(study_name=name, storage=open_storage(storage))
        _record_compute(result, before, full_steps, budget, promoted)
    return result


def check_search_share(
    space: SearchSpace,
    storage: str | optuna.storages.BaseStorage,
    study: str,
    *,
    budget: float | None,
    promote: int,
    seeds: int,
) -> None:
    """StudyError, before anything is written, if what promotion sets aside of ``budget``
    leaves the search less than one trial's run (the base config at the search's fidelity):
    no trial could complete, so nothing would be promoted or exported."""
    if budget is None or promote <= 0 or space.is_multi_objective:
        return
    dataset = cached_dataset(space.base.data)
    full = run_steps(space.base, dataset)
    reserve = promotion_reserve(space, promote, seeds, full, stored_study(storage, study))
    trial = run_steps(trial_config(space, {}, schedule(space)), dataset)
    left = int(budget * full) - reserve
    if left >= trial:
        return
    need = math.ceil((reserve + trial) / full * 10) / 10
    raise StudyError(
        f"{budget:g} full runs leave the search {max(0, left) / full:.2f} once --promote "
        f"{promote} --seeds {seeds} sets aside {reserve / full:.2f} (the top configs' other "
        f"seeds and the base config's {seeds}), less than one trial's run "
        f"({trial / full:.2f}): no trial could complete; give --budget {need:g} or more, or "
        "fewer --seeds or --promote",
        key="--budget",
    )


def check_no_trials(
    space: SearchSpace,
    storage: str | optuna.storages.BaseStorage,
    study: str,
    *,
    promote: int,
    create_only: bool = False,
) -> None:
    """StudyError, before anything is written, unless a session of no new trials (``trials=0``)
    does something: promote the top ``promote`` trials of the existing ``study``."""
    if create_only:
        raise StudyError(
            "0 with --create-only makes a study that runs no trial; give --trials N >= 1",
            key="--trials",
        )
    if space.is_multi_objective:
        raise StudyError(
            "0 runs no trial, and a study of several objectives promotes none; give --trials N "
            ">= 1",
            key="--trials",
        )
    if promote <= 0:
        raise StudyError(
            "0 runs no trial and promotes none; give --trials N >= 1, or --trials 0 --promote K "
            "to re-run the top K of an existing study at full fidelity without new trials",
            key="--trials",
        )
    if stored_study(storage, study) is None:
        where = mask_url(storage) if isinstance(storage, str) else "the storage"
        raise StudyError(
            f"0 only promotes the trials of an existing study, and {where} holds no study "
            f"{study!r}; give --trials N >= 1",
            key="--trials",
        )


def _check_counts(**given: float | None) -> None:
    """StudyError unless each given count or amount is one a search can use."""
    least = {"trials": 0, "jobs": 1, "promote_top": 0, "seeds": 1}
    for key, value in given.items():
        if value is None:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if key in least:
            ok = number and isinstance(value, int) and value >= least[key]
            want = f"an integer >= {least[key]}"
        else:  # budget, timeout
            ok = number and math.isfinite(value) and value > 0
            want = "a finite number > 0"
        if not ok:
            raise StudyError(f"must be {want}, got {value!r}", key=key)


def _counting_from(progress: Progress, done: int) -> Progress:
    """``progress`` counting the session's ``done`` earlier trials (the fidelity check's)."""

    def report(trials: int, total: int, best: float | None, share: float | None) -> None:
        progress(trials + done, total + done if total else 0, best, share)

    return report


def _done_before(study: optuna.Study) -> frozenset[int]:
    """Trials of earlier sessions (the enqueued, still waiting ones are this session's)."""
    return frozenset(
        t.number for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING
    )


def _calibrate(
    space: SearchSpace,
    opts: TuneOptions,
    study: optuna.Study,
    progress: Progress | None,
    log: Callable[[str], None],
    run: Simulate,
    budget: float | None,
    full_steps: int,
) -> dict | None:
    """Run the enqueued calibration trials (once per study) and record the fidelity check."""
    recorded = rec.fidelity_check(study)
    if recorded is not None or not wants_calibration(space):
        return recorded
    waiting = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if t.user_attrs.get(rec.CALIBRATION)
    ]  # fmt: skip
    if waiting:
        cost = _runs_cost(space, waiting, full_steps)
        log(f"fidelity check: {len(waiting)} configs at full fidelity first {_share(cost, budget)}")
        phase = dataclasses.replace(opts, trials=len(waiting))
        run_trials(space, phase, progress, run, _done_before(study))
    check = check_fidelity(study, space, schedule(space).report_every)
    if check is None:
        return None
    study.set_user_attr(rec.FIDELITY_CHECK, rec.clean(check.to_dict()))
    log(check.message)
    return check.to_dict()


def _runs_cost(space: SearchSpace, trials: Sequence[optuna.trial.FrozenTrial], full: int) -> float:
    """What full runs of the queued ``trials`` cost, in full runs of the base config."""
    dataset = cached_dataset(space.base.data)
    configs = [full_config(space.base, t.system_attrs.get("fixed_params", {})) for t in trials]
    return sum(run_steps(c, dataset) for c in configs) / max(1, full)


def _share(cost: float, budget: float | None) -> str:
    """``cost`` full-run equivalents against ``budget``, with a way out if it is past it."""
    if budget is None:
        return f"(up to {cost:.3g} full-run equivalents)"
    if cost <= budget:
        return f"(up to {cost:.3g} of the budget's {budget:g} full-run equivalents)"
    return (
        f"(up to {cost:.3g} full-run equivalents, more than the budget of {budget:g}: no search "
        f"trial will run after them; give a budget above {cost:.3g} or drop tuner.calibrate)"
    )


def _record_compute(
    study: optuna.Study,
    before: frozenset[int],
    full_steps: int,
    budget: float | None,
    promoted: int,
) -> None:
    """This session's compute in steps and full runs: its trials' and the ``promoted`` steps
    of the promotion runs it made (earlier sessions' runs, reused or not, are theirs)."""
    spent = spent_steps(study, before)
    study.set_user_attr(
        rec.COMPUTE,
        {
            "full_run_steps": full_steps,
            "trial_steps": spent,
            "promotion_steps": promoted,
            "full_runs": round((spent + promoted) / max(1, full_steps), 3),
            "budget": budget,
        },
    )
