"""fedhpo.tune: Optuna search over low-fidelity federated runs, with promotion of the best."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna

from fedhpo.space import SearchSpace, load_space
from fedhpo.store import DEFAULT_STORAGE, open_storage
from fedhpo.tune._checks import check_runnable
from fedhpo.tune._factories import PRUNERS, SAMPLERS, make_pruner, make_sampler
from fedhpo.tune._fidelity import full_config
from fedhpo.tune._objective import Objective, PruningCallback, cached_dataset
from fedhpo.tune._runner import Progress, TuneOptions, promote, run_trials

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "Objective",
    "PruningCallback",
    "TuneOptions",
    "check_runnable",
    "full_config",
    "make_pruner",
    "make_sampler",
    "promote",
    "run_trials",
    "tune",
]


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
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
) -> optuna.Study:
    """Search ``space`` and return the study; running it again resumes the same study.

    ``trials`` new trials (default: the space's ``tuner.trials``) run in ``jobs`` processes;
    then the top ``promote_top`` configs are re-run at full fidelity with ``seeds`` seeds.
    """
    if not isinstance(space, SearchSpace):
        space = load_space(space)
    check_runnable(space)
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
    )
    run_trials(space, opts, progress)
    if promote_top > 0:
        promote(space, opts, log)
    return optuna.load_study(study_name=name, storage=open_storage(storage))
