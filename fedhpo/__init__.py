"""fedhpo: hyperparameter tuning for federated learning.

Optuna proposes client and server hyperparameters; each trial is a cheap federated run in
fedhpo's own PyTorch simulator; results land in an Optuna study database.
"""

from fedhpo.config import RunConfig, load_config
from fedhpo.errors import ConfigError, FedhpoError, SearchSpaceError

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "FedhpoError",
    "RunConfig",
    "SearchSpaceError",
    "__version__",
    "load_config",
]
