"""Datasets by name: the registry and the built-in builders (synthetic, workload_w, idx, csv, leaf).

Users add a dataset with ``@register_dataset("name")`` on a builder
``fn(*, seed: int, **options) -> ArrayData`` in their own module (``--plugin``).
"""

from fedhpo.sim.datasets import _generated, _idx, _leaf, _tabular  # noqa: F401  (registers)
from fedhpo.sim.datasets._idx import read_idx
from fedhpo.sim.datasets._registry import (
    REQUIRED,
    build_dataset,
    check_options,
    dataset_options,
    list_datasets,
    register_dataset,
)

__all__ = [
    "REQUIRED",
    "build_dataset",
    "check_options",
    "dataset_options",
    "list_datasets",
    "read_idx",
    "register_dataset",
]
