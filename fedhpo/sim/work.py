"""One dispatch of work (clients, start model, per-client budgets and hyperparameters) -> result.

A :class:`Work` is what the engine hands a trainer: the clients sent one model version at
one moment, each with its own random stream, optional step budget (partial work at a
deadline) and optional per-client hyperparameters. A :class:`WorkResult` is what comes back,
stacked client by client in the work's order. Both the reference trainer
(:mod:`fedhpo.sim.cohort`) and the vectorized one (:mod:`fedhpo.sim.fast`) speak this; a
:class:`Trainer` declares which :class:`~fedhpo.config.ClientConfig` fields it can vary
inside one call, and :func:`train_work` splits any other variation into uniform pieces.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from fedhpo.config import ClientConfig
from fedhpo.sim.client import ClientUpdate, Params
from fedhpo.sim.data import FederatedDataset

__all__ = [
    "CLIENT_FIELDS",
    "Trainer",
    "Work",
    "WorkResult",
    "planned_steps",
    "steps_for",
    "train_work",
]

#: The local-training options a trainer must honour, per client or for the whole call.
CLIENT_FIELDS = tuple(f.name for f in dataclasses.fields(ClientConfig))


@dataclass(frozen=True, eq=False)
class Work:
    """The clients sent model ``version`` (parameters ``params``) in one dispatch.

    Client ``clients[i]`` trains with hyperparameters :meth:`hp_of` ``(i)`` (``hp`` with the
    i-th value of each ``overrides`` field), takes at most ``budgets[i]`` SGD steps when
    ``budgets`` is given, and draws its batches from
    ``torch_generator(seed, STREAM_CLIENT, streams[i], clients[i])``: ``streams`` is the
    round in synchronous runs, the dispatch number in asynchronous ones, so a client sent
    work twice never reuses a stream. With ``stacked``, ``params`` holds one row per client
    (``(k, *shape)``): each client starts from its own parameters and is a run of its own
    (several configs trained together; one that diverges stops no other).
    """

    clients: np.ndarray
    params: Params
    hp: ClientConfig
    seed: int
    streams: np.ndarray
    version: int = 0
    budgets: np.ndarray | None = None
    overrides: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    stacked: bool = False

    def __post_init__(self) -> None:
        k = len(self.clients)
        object.__setattr__(self, "clients", np.asarray(self.clients, dtype=np.int64))
        streams = np.broadcast_to(np.asarray(self.streams, dtype=np.int64), (k,))
        object.__setattr__(self, "streams", streams)
        if self.budgets is not None:
            budgets = np.asarray(self.budgets, dtype=np.int64)
            if budgets.shape != (k,) or bool((budgets < 0).any()):
                raise ValueError(f"budgets must be {k} integers >= 0, got {self.budgets!r}")
            object.__setattr__(self, "budgets", budgets)
        for name, values in self.overrides.items():
            if name not in CLIENT_FIELDS:
                raise ValueError(f"unknown client field {name!r}; known: {list(CLIENT_FIELDS)}")
            if len(values) != k:
                raise ValueError(f"overrides[{name!r}] has {len(values)} values for {k} clients")
        names = list(self.overrides)
        for combo in set(zip(*self.overrides.values(), strict=True)):
            dataclasses.replace(self.hp, **dict(zip(names, combo, strict=True)))  # validates
        if self.stacked and any(p.shape[:1] != (k,) for p in self.params.values()):
            raise ValueError(f"stacked params need one row per client ({k})")

    def __len__(self) -> int:
        return len(self.clients)

    def hp_of(self, i: int) -> ClientConfig:
        """The hyperparameters of the ``i``-th client (validated like any ClientConfig)."""
        if not self.overrides:
            return self.hp
        return dataclasses.replace(self.hp, **{k: v[i] for k, v in self.overrides.items()})

    def values(self, name: str) -> list[Any]:
        """Every client's value of ClientConfig field ``name``, in work order."""
        if name in self.overrides:
            return list(self.overrides[name])
        return [getattr(self.hp, name)] * len(self)

    def varying(self) -> set[str]:
        """The ClientConfig fields whose value is not the same for all clients."""
        return {k for k, v in self.overrides.items() if len(set(v)) > 1}

    def start_of(self, i: int) -> Params:
        """The parameters the ``i``-th client starts from."""
        return {k: v[i] for k, v in self.params.items()} if self.stacked else self.params

    def subset(self, positions: np.ndarray) -> Work:
        """The work of the clients at ``positions`` (uniform fields folded into ``hp``)."""
        overrides = {k: tuple(v[i] for i in positions.tolist()) for k, v in self.overrides.items()}
        uniform = {k: v[0] for k, v in overrides.items() if len(set(v)) == 1 and v}
        return dataclasses.replace(
            self,
            clients=self.clients[positions],
            streams=self.streams[positions],
            budgets=None if self.budgets is None else self.budgets[positions],
            hp=dataclasses.replace(self.hp, **uniform),
            overrides={k: v for k, v in overrides.items() if k not in uniform},
            params={k: v[positions] for k, v in self.params.items()}
            if self.stacked
            else self.params,
        )


def planned_steps(n: np.ndarray, work: Work) -> np.ndarray:
    """SGD steps each client of ``work`` takes with ``n`` training rows (budgets applied)."""
    steps = steps_for(
        n,
        np.array(work.values("batch_size"), dtype=np.int64),
        np.array(work.values("local_epochs"), dtype=np.int64),
        np.array([-1 if s is None else s for s in work.values("local_steps")], np.int64),
    )
    return steps if work.budgets is None else np.minimum(steps, work.budgets)


def steps_for(n: np.ndarray, batch_size: Any, local_epochs: Any, local_steps: Any) -> np.ndarray:
    """SGD steps for clients with ``n`` rows: ``local_steps`` (-1 or None: unset) if set and
    the client has rows, else ``local_epochs`` passes of ``ceil(n / batch_size)`` batches."""
    fixed = -1 if local_steps is None else local_steps
    epochs = local_epochs * (-(-n // batch_size))
    return np.where(np.asarray(fixed) >= 0, np.where(n > 0, fixed, 0), epochs).astype(np.int64)


@dataclass(frozen=True, eq=False)
class WorkResult:
    """What the clients of one :class:`Work` send back, row ``i`` for ``work.clients[i]``.

    If any client is not ``finite`` the other rows may be partial (training stopped early):
    callers discard the whole dispatch, as the engine does (the run has diverged).
    """

    clients: np.ndarray
    deltas: Params
    """Per parameter, ``(k, *shape)``: local parameters minus the ones the work started from."""
    num_samples: np.ndarray
    """int64 (k,): training rows of each client (its sample weight)."""
    steps: np.ndarray
    """int64 (k,): SGD steps taken."""
    losses: np.ndarray
    """float64 (k,): mean cross-entropy over the client's local batches (0.0 with no rows)."""
    finite: np.ndarray
    """bool (k,): False where a loss or parameter became NaN/inf."""

    def __len__(self) -> int:
        return len(self.clients)

    @staticmethod
    def empty(work: Work) -> WorkResult:
        """Zero deltas and no steps for every client of ``work``."""
        k = len(work)
        return WorkResult(
            clients=work.clients.copy(),
            deltas={n: p.new_zeros((k, *p.shape[work.stacked :])) for n, p in work.params.items()},
            num_samples=np.zeros(k, dtype=np.int64),
            steps=np.zeros(k, dtype=np.int64),
            losses=np.zeros(k),
            finite=np.ones(k, dtype=bool),
        )

    def updates(self) -> list[ClientUpdate]:
        """The rows as per-client :class:`~fedhpo.sim.client.ClientUpdate` (views)."""
        rows = {k: d.unbind(0) for k, d in self.deltas.items()}
        return [
            ClientUpdate({k: r[i] for k, r in rows.items()}, n, loss, steps, ok)
            for i, (n, loss, steps, ok) in enumerate(
                zip(
                    self.num_samples.tolist(),
                    self.losses.tolist(),
                    self.steps.tolist(),
                    self.finite.tolist(),
                    strict=True,
                )
            )
        ]

    def put(self, positions: np.ndarray, part: WorkResult) -> None:
        """Write ``part`` into rows ``positions`` (the tensors and arrays, in place)."""
        index = torch.from_numpy(positions)
        for name, stacked in self.deltas.items():
            stacked.index_copy_(0, index, part.deltas[name])
        for attr in ("num_samples", "steps", "losses", "finite"):
            getattr(self, attr)[positions] = getattr(part, attr)


#: ``train(model, dataset, work) -> result``; must not modify ``work.params``.
TrainFn = Callable[[nn.Module, FederatedDataset, Work], WorkResult]


@dataclass(frozen=True)
class Trainer:
    """A way to train a dispatch, and the ClientConfig fields it can vary inside one call."""

    name: str
    train: TrainFn
    per_client: frozenset[str]


def train_work(
    trainer: Trainer, model: nn.Module, dataset: FederatedDataset, work: Work
) -> WorkResult:
    """Train ``work`` with ``trainer``, split into calls of uniform values for every field
    that varies and ``trainer`` cannot vary per client (e.g. ``batch_size`` on the fast path)."""
    split = sorted(work.varying() - trainer.per_client)
    if not split:
        return trainer.train(model, dataset, work)
    keys = list(zip(*(work.values(name) for name in split), strict=True))
    out = WorkResult.empty(work)
    for key in dict.fromkeys(keys):
        positions = np.array([i for i, k in enumerate(keys) if k == key], dtype=np.int64)
        out.put(positions, trainer.train(model, dataset, work.subset(positions)))
    return out
