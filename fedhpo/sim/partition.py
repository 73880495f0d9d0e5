"""Partitioners: split sample indices into clients (iid, Dirichlet label skew, shards, natural)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from fedhpo.config import PartitionConfig
from fedhpo.errors import DataError

__all__ = ["Partition", "dirichlet", "iid", "natural", "partition", "shards"]


@dataclass(frozen=True, eq=False)
class Partition:
    """Client ``c`` owns the sample indices ``indices[offsets[c]:offsets[c + 1]]``."""

    indices: np.ndarray
    """int64 (M,): indices into the dataset, grouped by client."""
    offsets: np.ndarray
    """int64 (C + 1,): ``offsets[0] == 0`` and ``offsets[-1] == M``."""

    @property
    def num_clients(self) -> int:
        return len(self.offsets) - 1

    @property
    def sizes(self) -> np.ndarray:
        """int64 (C,): number of samples of each client."""
        return np.diff(self.offsets)

    def client(self, c: int) -> np.ndarray:
        """The sample indices of client ``c`` (a view)."""
        return self.indices[self.offsets[c] : self.offsets[c + 1]]


def _offsets(sizes: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return offsets


def _from_owner(owner: np.ndarray, num_clients: int) -> Partition:
    """Group samples by their owning client (stable: ascending index inside a client)."""
    indices = np.argsort(owner, kind="stable").astype(np.int64, copy=False)
    return Partition(indices, _offsets(np.bincount(owner, minlength=num_clients)))


def segment_positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for each (s, n), computed without a Python loop."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    seg_begin = _offsets(lengths)[:-1]
    shift = np.repeat(np.asarray(starts, dtype=np.int64) - seg_begin, lengths)
    return np.arange(total, dtype=np.int64) + shift


def _check_min_size(sizes: np.ndarray, min_size: int, what: str, fix: str) -> None:
    if len(sizes) and sizes.min() < min_size:
        raise DataError(
            f"{what} gives a client only {int(sizes.min())} samples, fewer than "
            f"min_size={min_size}; {fix}",
            key="data.partition",
        )


def iid(num_samples: int, num_clients: int, rng: np.random.Generator, min_size: int) -> Partition:
    """Balanced random split: client sizes differ by at most one; every sample is used."""
    per_client = num_samples // num_clients
    if per_client < min_size:
        raise DataError(
            f"an iid split of {num_samples} samples over {num_clients} clients gives "
            f"{per_client} samples per client, fewer than min_size={min_size}; lower "
            "data.partition.num_clients or data.partition.min_size",
            key="data.partition.num_clients",
        )
    sizes = np.full(num_clients, per_client, dtype=np.int64)
    sizes[: num_samples % num_clients] += 1
    return Partition(rng.permutation(num_samples).astype(np.int64), _offsets(sizes))


def _dirichlet_owner(
    labels: np.ndarray, num_clients: int, alpha: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One NIID-Bench draw: (owner of each sample, client sizes).

    As in NIID-Bench (Li et al., 2022) and Flower's baselines, a client that already holds at
    least ``N / num_clients`` samples gets no share of the remaining classes.
    """
    owner = np.empty(len(labels), dtype=np.int64)
    sizes = np.zeros(num_clients, dtype=np.int64)
    cap = len(labels) / num_clients
    clients = np.arange(num_clients)
    for k in np.unique(labels):
        idx_k = np.flatnonzero(labels == k)
        rng.shuffle(idx_k)
        p = rng.dirichlet(np.full(num_clients, alpha))
        masked = p * (sizes < cap)
        p = masked / masked.sum() if masked.sum() > 0 else p / p.sum()
        cuts = (np.cumsum(p) * len(idx_k)).astype(np.int64)[:-1]
        counts = np.diff(np.concatenate(([0], cuts, [len(idx_k)])))
        owner[idx_k] = np.repeat(clients, counts)
        sizes += counts
    return owner, sizes


def dirichlet(
    labels: np.ndarray,
    num_clients: int,
    alpha: float,
    rng: np.random.Generator,
    min_size: int,
    max_tries: int = 100,
) -> Partition:
    """Label skew: each class is split over clients by proportions drawn from Dir(alpha).

    The whole draw is repeated until every client has ``min_size`` samples.
    """
    labels = np.asarray(labels)
    smallest = 0
    for _ in range(max_tries):
        owner, sizes = _dirichlet_owner(labels, num_clients, alpha, rng)
        smallest = int(sizes.min())
        if smallest >= min_size:
            return _from_owner(owner, num_clients)
    raise DataError(
        f"Dirichlet(alpha={alpha}) split of {len(labels)} samples over {num_clients} clients "
        f"left a client with fewer than min_size={min_size} samples in all {max_tries} tries "
        f"(last smallest: {smallest}); use a larger data.partition.alpha, fewer "
        "data.partition.num_clients or a smaller data.partition.min_size",
        key="data.partition",
    )


def shards(
    labels: np.ndarray,
    num_clients: int,
    shards_per_client: int,
    rng: np.random.Generator,
    min_size: int,
) -> Partition:
    """McMahan et al. (2017): sort by label, cut into shards, deal each client random shards."""
    labels = np.asarray(labels)
    num_shards = num_clients * shards_per_client
    order = np.argsort(labels, kind="stable").astype(np.int64)
    shard_sizes = np.full(num_shards, len(labels) // num_shards, dtype=np.int64)
    shard_sizes[: len(labels) % num_shards] += 1  # the sizes np.array_split would give
    shard_starts = _offsets(shard_sizes)[:-1]
    dealt = rng.permutation(num_shards)
    client_sizes = shard_sizes[dealt].reshape(num_clients, shards_per_client).sum(axis=1)
    _check_min_size(
        client_sizes,
        min_size,
        f"a shards split ({num_shards} shards of {len(labels)} samples)",
        "lower data.partition.num_clients, data.partition.min_size, or raise "
        "data.partition.shards_per_client",
    )
    positions = segment_positions(shard_starts[dealt], shard_sizes[dealt])
    return Partition(order[positions], _offsets(client_sizes))


def natural(client_ids: np.ndarray, min_size: int) -> Partition:
    """One client per distinct id, in sorted id order; clients under ``min_size`` are dropped,
    with a warning saying how many."""
    ids = np.asarray(client_ids)
    if len(ids) and np.all(ids[1:] >= ids[:-1]):  # already grouped: skip the sort
        starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
        counts = np.diff(np.append(starts, len(ids))).astype(np.int64)
        indices = np.arange(len(ids), dtype=np.int64)
    else:
        _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
        indices = np.argsort(inverse.ravel(), kind="stable").astype(np.int64)
        starts = _offsets(counts)[:-1]
    keep = counts >= min_size
    if not keep.any():
        raise DataError(
            f"no client has min_size={min_size} samples (largest: "
            f"{int(counts.max()) if len(counts) else 0}); lower data.partition.min_size",
            key="data.partition.min_size",
        )
    if not keep.all():
        dropped = counts[~keep]
        warnings.warn(
            f"the natural partition dropped {len(dropped)} of {len(counts)} clients "
            f"({int(dropped.sum())} training rows) with fewer than data.partition.min_size="
            f"{min_size}; lower data.partition.min_size to keep them",
            stacklevel=2,
        )
        indices = indices[segment_positions(starts[keep], counts[keep])]
    return Partition(indices, _offsets(counts[keep].astype(np.int64)))


def partition(
    labels_or_n: np.ndarray | int,
    cfg: PartitionConfig,
    client_ids: np.ndarray | None,
    rng: np.random.Generator,
) -> Partition:
    """Split a dataset as ``cfg`` says (method None: natural if there are client ids, else iid)."""
    method = cfg.method or ("natural" if client_ids is not None else "iid")
    if method == "natural":
        if client_ids is None:
            raise DataError(
                "method 'natural' needs a dataset with client ids, and this one has none; "
                "use iid, dirichlet or shards",
                key="data.partition.method",
            )
        return natural(client_ids, cfg.min_size)
    if method == "iid":
        n = labels_or_n if isinstance(labels_or_n, int) else len(labels_or_n)
        return iid(n, cfg.num_clients, rng, cfg.min_size)
    if isinstance(labels_or_n, int):
        raise DataError(f"method {method!r} needs labels", key="data.partition.method")
    if method == "dirichlet":
        return dirichlet(labels_or_n, cfg.num_clients, cfg.alpha, rng, cfg.min_size)
    if method == "shards":
        return shards(labels_or_n, cfg.num_clients, cfg.shards_per_client, rng, cfg.min_size)
    raise DataError(
        f"unknown method {method!r}; use iid, dirichlet, shards or natural",
        key="data.partition.method",
    )
