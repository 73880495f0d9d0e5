"""fedhpo.tune: Optuna search over low-fidelity federated runs, with promotion of the best."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import optuna

from fedhpo.errors import SearchSpaceError
from fedhpo.space import SearchSpace, load_space
from fedhpo.store import DEFAULT_STORAGE, Liveness, RetryPolicy, open_storage
from fedhpo.tune._factories import PRUNERS, SAMPLERS, make_pruner, make_sampler
from fedhpo.tune._fidelity import full_config
from fedhpo.tune._join import Joined, join_study, run_worker
from fedhpo.tune._join import create_only as _create_only
from fedhpo.tune._objective import Objective, PruningCallback, cached_dataset
from fedhpo.tune._runner import Progress, TuneOptions, promote, run_trials

__all__ = [
    "PRUNERS",
    "Joined",
    "SAMPLERS",
    "Objective",
    "PruningCallback",
    "TuneOptions",
    "full_config",
    "join_study",
    "make_pruner",
    "make_sampler",
    "promote",
    "run_trials",
    "run_worker",
    "tune",
]


def _check_runnable(space: SearchSpace) -> None:
    needs_val = any(o.metric.startswith("val_") for o in space.objectives)
    if needs_val and space.base.data.val_fraction == 0:
        raise SearchSpaceError(
            "objective needs validation data but the base config has data.val_fraction: 0; "
            "set data.val_fraction > 0 or optimize a test_* metric",
            key="objective",
            source=space.source,
        )


def tune(
    space: SearchSpace | str | Path,
    *,
    storage: str = DEFAULT_STORAGE,
    study: str | None = None,
    trials: int | None = None,
    jobs: int = 1,
    timeout: float | None = None,
    promote_top: int = 0,
    seeds: int = 3,
    plugins: Sequence[str] = (),
    liveness: Liveness | None = None,
    retry: RetryPolicy | None = None,
    create_only: bool = False,
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
) -> optuna.Study:
    """Search ``space`` and return the study; running it again resumes the same study.

    ``trials`` new trials in total (default: the space's ``tuner.trials``) run in ``jobs``
    processes, which import the ``plugins`` modules; then the top ``promote_top`` configs are
    re-run at full fidelity with ``seeds`` seeds. ``liveness``, ``retry``: heartbeats and database retries of the jobs.
    ``create_only``: create the study and record its budget for ``fedhpo worker``s, run nothing.
    """
    if not isinstance(space, SearchSpace):
        space = load_space(space)
    _check_runnable(space)
    # Build the base data once before touching the database: a missing data file is a clear
    # error here, not a failure in every trial (and the dataset is cached for jobs=1).
    cached_dataset(space.config_for({}).data)
    name = study or Path(space.source).stem
    opts = TuneOptions(
        storage=storage,
        study=name,
        trials=(space.tuner.trials or 30) if trials is None else trials,
        jobs=max(1, jobs),
        timeout=space.tuner.timeout if timeout is None else timeout,
        promote=promote_top,
        seeds=seeds,
        plugins=tuple(plugins),
        liveness=liveness or Liveness(),
        retry=retry or RetryPolicy(),
    )
    if create_only:
        _create_only(space, opts)
        return optuna.load_study(study_name=name, storage=open_storage(storage))
    run_trials(space, opts, progress)
    if promote_top > 0:
        promote(space, opts, log)
    return optuna.load_study(study_name=name, storage=open_storage(storage))
