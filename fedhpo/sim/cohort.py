"""The reference trainer: the plain per-client loop every faster trainer is tested against."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fedhpo.sim.client import ClientUpdate, local_update
from fedhpo.sim.data import FederatedDataset
from fedhpo.sim.sampling import STREAM_CLIENT, torch_generator
from fedhpo.sim.work import CLIENT_FIELDS, Trainer, Work, WorkResult

__all__ = ["REFERENCE", "train_reference"]


def train_reference(model: nn.Module, dataset: FederatedDataset, work: Work) -> WorkResult:
    """:func:`~fedhpo.sim.client.local_update` client after client, in work order.

    Stops at the first client that diverges (the rows after it stay empty) unless the work
    is ``stacked`` (each row its own run); every option of
    :class:`~fedhpo.config.ClientConfig` may differ per client.
    """
    updates: list[ClientUpdate] = []
    for i, c in enumerate(work.clients.tolist()):
        x, y = dataset.client_train(c)
        gen = torch_generator(work.seed, STREAM_CLIENT, int(work.streams[i]), c)
        budget = None if work.budgets is None else int(work.budgets[i])
        update = local_update(model, work.start_of(i), x, y, work.hp_of(i), gen, budget)
        updates.append(update)
        if not update.finite and not work.stacked:
            break
    if len(updates) == len(work):
        return _stacked(work, updates)
    out = WorkResult.empty(work)
    if updates:
        out.put(np.arange(len(updates)), _stacked(work, updates))
    return out


def _stacked(work: Work, updates: list[ClientUpdate]) -> WorkResult:
    return WorkResult(
        clients=work.clients[: len(updates)],
        deltas={k: torch.stack([u.delta[k] for u in updates]) for k in work.params},
        num_samples=np.array([u.num_samples for u in updates], dtype=np.int64),
        steps=np.array([u.steps for u in updates], dtype=np.int64),
        losses=np.array([u.train_loss for u in updates], dtype=np.float64),
        finite=np.array([u.finite for u in updates], dtype=bool),
    )


#: The reference trainer: varies every ClientConfig field per client.
REFERENCE = Trainer("reference", train_reference, frozenset(CLIENT_FIELDS))
