"""Cohort selection and seed derivation: pure functions of (seed, round, ...)."""

from __future__ import annotations

import numpy as np
import torch

# Stream tags keep the random streams of one run independent of each other.
STREAM_COHORT = 1
STREAM_CLIENT = 2
STREAM_VAL_CLIENTS = 3
STREAM_INIT = 4


def derive_seed(seed: int, *path: int) -> int:
    """A 63-bit seed derived from ``seed`` and a path of integers (stream, round, client...)."""
    state = np.random.SeedSequence([seed, *path]).generate_state(1, dtype=np.uint64)
    return int(state[0]) >> 1


def rng(seed: int, *path: int) -> np.random.Generator:
    """A numpy Generator for the stream at ``path`` under ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([seed, *path]))


def torch_generator(seed: int, *path: int) -> torch.Generator:
    """A CPU torch.Generator for the stream at ``path`` under ``seed``."""
    g = torch.Generator()
    g.manual_seed(derive_seed(seed, *path))
    return g


def sample_cohort(seed: int, round_: int, num_clients: int, cohort_size: int) -> np.ndarray:
    """Clients trained in round ``round_``: uniform without replacement, sorted ids.

    A pure function of its arguments, so a resumed or repeated run replays the same cohorts.
    """
    if not 1 <= cohort_size <= num_clients:
        raise ValueError(f"cohort_size must be in [1, {num_clients}], got {cohort_size}")
    chosen = rng(seed, STREAM_COHORT, round_).choice(num_clients, size=cohort_size, replace=False)
    return np.sort(chosen)


def validation_clients(seed: int, num_clients: int, count: int | None) -> np.ndarray:
    """The fixed clients whose validation rows score every round (all when ``count`` is None)."""
    if count is None or count >= num_clients:
        return np.arange(num_clients)
    return np.sort(rng(seed, STREAM_VAL_CLIENTS).choice(num_clients, size=count, replace=False))
