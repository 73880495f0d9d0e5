"""The reference trainer: the plain per-client loop every faster trainer is tested against."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fedhpo.sim.client import ClientUpdate, local_update, modes
from fedhpo.sim.data import FederatedDataset
from fedhpo.sim.sampling import STREAM_CLIENT, derive_seed, torch_generator
from fedhpo.sim.work import CLIENT_FIELDS, Trainer, Work, WorkResult

__all__ = ["MODEL_DRAWS", "REFERENCE", "train_reference"]

MODEL_DRAWS = 1
"""The last element of the seed path of a client's model draws (dropout masks):
``derive_seed(seed, STREAM_CLIENT, stream, client, MODEL_DRAWS)``, a sub-stream of the
client's own stream, whose generator (``torch_generator(seed, STREAM_CLIENT, stream,
client)``) only draws its batches."""


def train_reference(model: nn.Module, dataset: FederatedDataset, work: Work) -> WorkResult:
    """:func:`~fedhpo.sim.client.local_update` client after client, in work order.

    Stops at the first client that diverges (the rows after it stay empty) unless the work
    is ``stacked`` (each row its own run); every option of
    :class:`~fedhpo.config.ClientConfig` may differ per client. The model trains in train
    mode; its own random ops (dropout) draw from torch's global generator seeded per client
    (:data:`MODEL_DRAWS`) inside ``fork_rng``, so a client draws the same masks whatever
    trains beside it, and the global generator and the model's modes are left as they were.
    """
    updates: list[ClientUpdate] = []
    with modes(model, training=True), torch.random.fork_rng(devices=[]):
        for i, c in enumerate(work.clients.tolist()):
            x, y = dataset.client_train(c)
            stream = int(work.streams[i])
            gen = torch_generator(work.seed, STREAM_CLIENT, stream, c)
            torch.default_generator.manual_seed(
                derive_seed(work.seed, STREAM_CLIENT, stream, c, MODEL_DRAWS)
            )
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
