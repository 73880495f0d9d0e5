"""Cohort selection and seed derivation: pure functions of (seed, round, ...)."""

from __future__ import annotations

import numpy as np
import torch

# Stream tags keep the random streams of one run independent of each other.
STREAM_COHORT = 1
STREAM_CLIENT = 2
STREAM_VAL_CLIENTS = 3
STREAM_INIT = 4
STREAM_SPEED = 5
STREAM_BANDWIDTH = 6
STREAM_WINDOW = 7
STREAM_DROPOUT = 8


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


def sample_idle(
    seed: int, dispatch: int, num_clients: int, count: int, busy: set[int]
) -> np.ndarray:
    """``count`` clients not in ``busy`` for dispatch ``dispatch``, uniformly, sorted ids.

    Draws ``count + len(busy)`` clients as :func:`sample_cohort` does and keeps the first
    ``count`` idle ones in draw order, so with nobody busy it is exactly
    ``sample_cohort(seed, dispatch, ...)``: asynchronous dispatches replay synchronous
    cohorts in the lock-step case. Costs time for ``count + len(busy)`` clients only.
    """
    count = min(count, num_clients - len(busy))
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    size = min(num_clients, count + len(busy))
    drawn = rng(seed, STREAM_COHORT, dispatch).choice(num_clients, size=size, replace=False)
    if busy:
        drawn = drawn[~np.isin(drawn, np.fromiter(busy, dtype=np.int64, count=len(busy)))]
    return np.sort(drawn[:count])


def validation_clients(seed: int, num_clients: int, count: int | None) -> np.ndarray:
    """The fixed clients whose validation rows score every round (all when ``count`` is None)."""
    if count is None or count >= num_clients:
        return np.arange(num_clients)
    return np.sort(rng(seed, STREAM_VAL_CLIENTS).choice(num_clients, size=count, replace=False))
