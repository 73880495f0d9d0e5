"""fedhpo: hyperparameter tuning for federated learning.

Optuna proposes client and server hyperparameters; each trial is a cheap federated run in
fedhpo's own PyTorch simulator; results land in an Optuna study database::

    import fedhpo
    from fedhpo.tune import tune  # (``fedhpo.tune`` is the subpackage)

    study = tune("searchspaces/lr_mu.yaml", trials=30, jobs=2)
    print(fedhpo.leaderboard(study))
    config = fedhpo.best_config(study)
    result = fedhpo.run(config, out="runs/best")

The heavy layers (torch, optuna, plotly) load on first use of a name that needs them, so
``import fedhpo.sim`` never pulls in optuna or plotly.
"""

from __future__ import annotations

import importlib
from typing import Any

from fedhpo.config import RunConfig, load_config
from fedhpo.errors import ConfigError, DataError, FedhpoError, SearchSpaceError, StudyError

__version__ = "0.1.0"

_LAZY = {
    "run": "fedhpo.runs",
    "run_simulation": "fedhpo.sim.engine",
    "load_space": "fedhpo.space",
    "open_storage": "fedhpo.store",
    "leaderboard": "fedhpo.store",
    "best_config": "fedhpo.store",
    "write_report": "fedhpo.report",
}

__all__ = [
    "ConfigError",
    "DataError",
    "FedhpoError",
    "RunConfig",
    "SearchSpaceError",
    "StudyError",
    "__version__",
    "load_config",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fedhpo' has no attribute {name!r}")
