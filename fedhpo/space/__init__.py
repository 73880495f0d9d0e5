"""Search spaces: fedhpo / FederatedScope / FedEx-grid files -> typed params -> trial.suggest_*."""

from fedhpo.space._aliases import FS_ALIASES
from fedhpo.space._conditions import OPS, And, AnyCondition, Condition, Or
from fedhpo.space._describe import describe
from fedhpo.space._load import detect_format, load_space, parse_space
from fedhpo.space._optuna import (
    CleanSteps,
    ConfigGridSampler,
    Grid,
    distributions,
    grid_search_space,
    suggest,
)
from fedhpo.space._params import (
    MAX_INT,
    CategoricalParam,
    FloatParam,
    IntParam,
    Param,
    snap_to_step,
)
from fedhpo.space._settings import METRICS, PRUNERS, SAMPLERS, Fidelity, Objective, TunerSpec
from fedhpo.space._space import SearchSpace

__all__ = [
    "FS_ALIASES",
    "MAX_INT",
    "METRICS",
    "OPS",
    "PRUNERS",
    "SAMPLERS",
    "And",
    "AnyCondition",
    "CategoricalParam",
    "CleanSteps",
    "Condition",
    "ConfigGridSampler",
    "Fidelity",
    "FloatParam",
    "Grid",
    "IntParam",
    "Objective",
    "Or",
    "Param",
    "SearchSpace",
    "TunerSpec",
    "describe",
    "detect_format",
    "distributions",
    "grid_search_space",
    "load_space",
    "parse_space",
    "snap_to_step",
    "suggest",
]
