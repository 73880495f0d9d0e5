"""The fast trainer's schedule: each client's permutations and batch indices for a round."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fedhpo.sim.data import FederatedDataset
from fedhpo.sim.sampling import STREAM_CLIENT, derive_seed
from fedhpo.sim.work import Work, planned_steps


@dataclass(frozen=True)
class _Draws:
    """Every client's local permutations (work order), concatenated pass after pass."""

    n: np.ndarray
    """Training rows per client."""
    batches: np.ndarray
    """Batches per pass: ceil(n / batch_size)."""
    steps: np.ndarray
    """SGD steps per client."""
    perms: list[Tensor]
    """Per client, its passes' ``randperm(n)`` concatenated (local row numbers)."""


def draw_permutations(dataset: FederatedDataset, work: Work) -> _Draws:
    """Draw each client's permutations from its own generator, one ``randperm`` per pass."""
    n = dataset.n_train[work.clients].astype(np.int64)
    batches = -(-n // work.hp.batch_size)
    steps = planned_steps(n, work)
    passes = -(-steps // np.maximum(batches, 1))
    perms = []
    seeds = _client_seeds(work.seed, work.streams, work.clients)
    gen = torch.Generator()  # re-seeding fully resets it: as good as a fresh one per client
    for s, rows, count in zip(seeds, n.tolist(), passes.tolist(), strict=True):
        gen.manual_seed(s)
        drawn = [torch.randperm(rows, generator=gen) for _ in range(count)]
        perms.append(drawn[0] if count == 1 else torch.cat(drawn) if drawn else torch.empty(0))
    return _Draws(n, batches, steps.astype(np.int64), perms)


# numpy.random.SeedSequence's constants (numpy/random/bit_generator.pyx).
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R, _MASK = 0xCA01F9DD, 0x4973F715, 0xFFFFFFFF


def _words(value: int) -> list[int]:
    """An integer as SeedSequence reads it: 32-bit words, least significant first."""
    words = [value & _MASK]
    while value > _MASK:
        value >>= 32
        words.append(value & _MASK)
    return words


def _seed_sequence_seeds(entropy: list[np.ndarray]) -> np.ndarray:
    """``SeedSequence(words).generate_state(1, uint64)[0] >> 1`` for columns of 32-bit words.

    numpy's hash written out on uint64 arrays, so a whole cohort's generator seeds cost a few
    array operations instead of one ``SeedSequence`` (about 10 us) per client.
    """
    const = _INIT_A

    def hashmix(value: np.ndarray) -> np.ndarray:
        nonlocal const
        value = value ^ np.uint64(const)
        const = (const * _MULT_A) & _MASK
        value = (value * np.uint64(const)) & np.uint64(_MASK)
        return value ^ (value >> np.uint64(16))

    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out: np.ndarray = x * np.uint64(_MIX_L) - y * np.uint64(_MIX_R)
        out &= np.uint64(_MASK)
        return out ^ (out >> np.uint64(16))

    zero = np.zeros_like(entropy[0])
    pool = [hashmix(entropy[i] if i < len(entropy) else zero) for i in range(4)]
    for src in range(4):
        for dst in range(4):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    for word in entropy[4:]:
        for dst in range(4):
            pool[dst] = mix(pool[dst], hashmix(word))
    const, state = _INIT_B, []
    for word in pool[:2]:
        word = word ^ np.uint64(const)
        const = (const * _MULT_B) & _MASK
        word = (word * np.uint64(const)) & np.uint64(_MASK)
        state.append(word ^ (word >> np.uint64(16)))
    return (state[0] | (state[1] << np.uint64(32))) >> np.uint64(1)


def _client_seeds(seed: int, streams: np.ndarray, clients: np.ndarray) -> list[int]:
    """``derive_seed(seed, STREAM_CLIENT, streams[i], clients[i])`` for every client.

    Vectorized; checked against :func:`~fedhpo.sim.sampling.derive_seed` on the first client
    (the loop is used instead should they ever disagree).
    """
    streams = np.broadcast_to(streams, clients.shape)
    prefix = [w for v in (seed, STREAM_CLIENT) for w in _words(int(v))]
    seeds: list[int] = []
    if len(clients) and max(int(clients.max()), int(streams.max())) <= _MASK:
        cols = [np.full(len(clients), w, dtype=np.uint64) for w in prefix]
        cols += [streams.astype(np.uint64), clients.astype(np.uint64)]
        seeds = _seed_sequence_seeds(cols).tolist()
    first = derive_seed(seed, STREAM_CLIENT, int(streams[0]), int(clients[0])) if seeds else None
    if not seeds or seeds[0] != first:
        pairs = zip(streams.tolist(), clients.tolist(), strict=True)
        seeds = [derive_seed(seed, STREAM_CLIENT, r, c) for r, c in pairs]
    return seeds


@dataclass(frozen=True)
class Schedule:
    """The batches of a group of clients sorted by steps (descending), packed step by step.

    Step ``s`` uses pair rows ``starts[s] : starts[s] + active[s]``, one per client still
    training (clients ``0 .. active[s]-1`` of the group). Each pair has :attr:`width`
    columns: the batch size, or the group's largest client's rows when that is smaller (a
    batch never holds more rows than its client), so a "full batch" costs a client's rows,
    not ``batch_size``.
    """

    active: list[int]
    starts: list[int]
    rows: Tensor
    """(pairs, width) int64 global row indices; padding repeats the batch's first row."""
    weight: Tensor
    """(pairs, width): 1 / batch length for real rows, 0 for padding."""
    real: np.ndarray
    """(pairs, width) bool: real rows."""
    pair_step: np.ndarray
    pair_client: np.ndarray

    @property
    def width(self) -> int:
        """Columns per pair: ``min(batch_size, the group's largest client's rows)``."""
        return int(self.rows.shape[1])


def build_schedule(
    draws: _Draws, group: np.ndarray, first_row: np.ndarray, batch: int, dtype: torch.dtype
) -> Schedule:
    """Pack the batches of ``group`` (cohort positions sorted by steps, descending);
    ``first_row[i]`` is the global row of the first training row of ``group[i]``.

    Padded to :attr:`Schedule.width` columns: the columns past a client's rows carry weight
    0 whatever their number, so the numbers are those of ``batch`` columns."""
    n, nb, steps = draws.n[group], draws.batches[group], draws.steps[group]
    width = min(batch, int(n.max()))
    active = np.searchsorted(-steps, -np.arange(int(steps[0])), side="left")
    starts = np.concatenate(([0], np.cumsum(active)))
    pair_step = np.repeat(np.arange(len(active)), active)
    pair_client = np.arange(int(starts[-1])) - np.repeat(starts[:-1], active)
    perms = [draws.perms[p] for p in group.tolist()]
    base = np.concatenate(([0], np.cumsum([len(p) for p in perms])[:-1])).astype(np.int64)
    flat = torch.cat(perms).numpy()
    pn, pnb = n[pair_client], nb[pair_client]
    first = (pair_step % pnb) * batch
    pos = first[:, None] + np.arange(width)[None, :]
    real = pos < pn[:, None]
    pos = np.where(real, pos, first[:, None])
    rows = flat[(base[pair_client] + (pair_step // pnb) * pn)[:, None] + pos]
    rows += first_row[pair_client][:, None]
    count = np.minimum(batch, pn - first)
    return Schedule(
        active=active.tolist(),
        starts=starts.tolist(),
        rows=torch.from_numpy(rows),
        weight=torch.from_numpy(real / count[:, None]).to(dtype),
        real=real,
        pair_step=pair_step,
        pair_client=pair_client,
    )
