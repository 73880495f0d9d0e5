"""Cohort trainers: the protocol the engine calls, and the plain per-client reference loop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from torch import nn

from fedhpo.config import ClientConfig
from fedhpo.sim.client import ClientUpdate, Params, local_update
from fedhpo.sim.data import FederatedDataset
from fedhpo.sim.sampling import STREAM_CLIENT, torch_generator

__all__ = ["CohortTrainer", "train_cohort_reference"]


class CohortTrainer(Protocol):
    """Trains the clients of one round; the vectorized fast path is another implementation."""

    def __call__(
        self,
        model: nn.Module,
        params: Params,
        dataset: FederatedDataset,
        cohort: np.ndarray,
        hp: ClientConfig,
        seed: int,
        round_: int,
    ) -> Sequence[ClientUpdate]: ...


def train_cohort_reference(
    model: nn.Module,
    params: Params,
    dataset: FederatedDataset,
    cohort: np.ndarray,
    hp: ClientConfig,
    seed: int,
    round_: int,
) -> list[ClientUpdate]:
    """The plain per-client loop: the reference every faster path is tested against."""
    updates = []
    for c in cohort.tolist():
        x, y = dataset.client_train(c)
        gen = torch_generator(seed, STREAM_CLIENT, round_, c)
        update = local_update(model, params, x, y, hp, gen)
        updates.append(update)
        if not update.finite:
            break
    return updates
