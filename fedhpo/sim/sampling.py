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

    With nobody busy it is exactly ``sample_cohort(seed, dispatch, ...)``, so asynchronous
    dispatches replay synchronous cohorts in the lock-step case. Otherwise clients are drawn
    from the same stream with replacement and busy or repeated ones are skipped (sequential
    sampling without replacement: uniform over the idle subsets); when most clients are busy
    the idle ones are drawn from a permutation instead. Costs time for about ``count`` draws.
    """
    count = min(count, num_clients - len(busy))
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    gen = rng(seed, STREAM_COHORT, dispatch)
    if not busy:
        return np.sort(gen.choice(num_clients, size=count, replace=False))
    if 2 * len(busy) > num_clients:
        order = gen.permutation(num_clients)
        idle = order[~np.isin(order, np.fromiter(busy, dtype=np.int64, count=len(busy)))]
        return np.sort(idle[:count])
    chosen: list[int] = []
    seen = set(busy)
    while len(chosen) < count:
        for c in gen.integers(0, num_clients, size=2 * (count - len(chosen)) + 4).tolist():
            if c not in seen:
                seen.add(c)
                chosen.append(c)
                if len(chosen) == count:
                    break
    return np.sort(np.array(chosen, dtype=np.int64))


def validation_clients(seed: int, num_clients: int, count: int | None) -> np.ndarray:
    """The fixed clients whose validation rows score every round (all when ``count`` is None)."""
    if count is None or count >= num_clients:
        return np.arange(num_clients)
    return np.sort(rng(seed, STREAM_VAL_CLIENTS).choice(num_clients, size=count, replace=False))
