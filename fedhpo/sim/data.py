"""Federated datasets: all client rows in one tensor pair plus per-client offsets and splits."""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from fedhpo.config import DataConfig
from fedhpo.errors import ConfigError, DataError
from fedhpo.sim.partition import Partition, partition, segment_positions

__all__ = ["ArrayData", "FederatedDataset", "federate", "stream_rng"]


def stream_rng(seed: int, stream: str) -> np.random.Generator:
    """An independent generator for the named ``stream`` of ``seed`` (never global state)."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"must be an integer >= 0, got {seed!r}", key="data.seed")
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(stream.encode())]))


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise DataError(f"{message} (fix the dataset builder)")


@dataclass(frozen=True, eq=False)
class ArrayData:
    """What a dataset builder returns: numpy arrays, rows in any order."""

    x: np.ndarray
    """float32 (N, *feature_shape)."""
    y: np.ndarray
    """int64 (N,), values in [0, num_classes)."""
    client: np.ndarray | None
    """int64 (N,) client ids when the data is naturally federated, else None."""
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int
    presorted: bool = False
    """True if ``client`` is non-decreasing and rows inside each client are already in random
    order: :func:`federate` then uses ``x`` as it is (no gather, no copy, no shuffle)."""
    dropped_rows: int = 0
    """Rows of the source files the builder dropped (missing values), reported in a warning."""

    def __post_init__(self) -> None:
        n = len(self.x)
        _require(n > 0, "ArrayData has no training rows")
        _require(self.x.dtype == np.float32, f"ArrayData.x must be float32, got {self.x.dtype}")
        _require(self.x.ndim >= 2, f"ArrayData.x must be (N, *features), got {self.x.shape}")
        _require(self.y.dtype == np.int64, f"ArrayData.y must be int64, got {self.y.dtype}")
        _require(self.y.shape == (n,), f"ArrayData.y must have shape ({n},), got {self.y.shape}")
        _require(self.test_x.dtype == np.float32, "ArrayData.test_x must be float32")
        _require(self.test_y.dtype == np.int64, "ArrayData.test_y must be int64")
        _require(
            self.test_x.shape[1:] == self.x.shape[1:] and len(self.test_y) == len(self.test_x),
            f"test set shape {self.test_x.shape} / {self.test_y.shape} does not match x "
            f"{self.x.shape}",
        )
        _require(len(self.test_y) > 0, "ArrayData has no test rows (test_x is empty)")
        self._check_finite()
        self._check_labels()
        self._check_clients()

    def _check_finite(self) -> None:
        for name, x in (("x", self.x), ("test_x", self.test_x)):
            # a NaN or inf anywhere makes the float64 sum non-finite (finite float32 rows
            # cannot overflow it), and the sum needs no array of flags the size of x
            if np.isfinite(x.sum(dtype=np.float64)):
                continue
            bad = ~np.isfinite(x.reshape(len(x), -1))
            raise DataError(
                f"ArrayData.{name} has {int(bad.sum())} non-finite values (NaN or inf), first "
                f"in row {int(np.argmax(bad.any(axis=1)))}: fix the dataset builder (or drop "
                "those rows)"
            )

    def _check_labels(self) -> None:
        k = self.num_classes
        for name, y in (("y", self.y), ("test_y", self.test_y)):
            ok = len(y) == 0 or (int(y.min()) >= 0 and int(y.max()) < k)
            _require(ok, f"ArrayData.{name} must lie in [0, num_classes={k})")

    def _check_clients(self) -> None:
        c = self.client
        if c is None:
            _require(not self.presorted, "ArrayData.presorted needs client ids")
            return
        _require(c.dtype == np.int64 and c.shape == self.y.shape, "ArrayData.client: int64 (N,)")
        if self.presorted:
            _require(bool(np.all(c[1:] >= c[:-1])), "presorted ArrayData needs sorted client ids")


@dataclass(frozen=True, eq=False, repr=False)
class FederatedDataset:
    """Client ``c`` owns rows ``offsets[c]:offsets[c+1]`` of ``x``/``y``: first its
    ``n_train[c]`` training rows, then (the last ``n_val[c]`` rows) its validation rows.

    Rows inside a client are in random order, so both splits are random. Costs no Python
    object per client: only the tensors and three int64 arrays.
    """

    x: torch.Tensor
    y: torch.Tensor
    offsets: np.ndarray
    n_train: np.ndarray
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    name: str
    n_val: np.ndarray | None = None
    """Validation rows per client; default ``sizes - n_train``. It differs from that only
    after :meth:`with_fraction`, which drops training rows but keeps validation as it is."""
    dropped_rows: int = 0
    """Rows of the source files the builder dropped for missing values (see ArrayData)."""
    fraction: float = 1.0
    """The share of each client's training rows kept (``data.fraction``, applied by
    :meth:`with_fraction`), so that a dataset is never cut twice (:meth:`at_fraction`)."""

    def __post_init__(self) -> None:
        sizes = np.diff(self.offsets)
        if self.n_val is None:
            object.__setattr__(self, "n_val", sizes - self.n_train)
        ok = (
            self.offsets[0] == 0
            and self.offsets[-1] == len(self.x) == len(self.y)
            and bool(np.all(sizes >= 0))
            and bool(np.all(self.n_train >= 0))
            and bool(np.all(self.n_train + self.val_sizes <= sizes))
        )
        _require(ok, "FederatedDataset offsets / n_train / n_val are inconsistent")

    def __repr__(self) -> str:
        return (
            f"FederatedDataset(name={self.name!r}, clients={self.num_clients}, "
            f"rows={len(self.x)}, train={int(self.n_train.sum())}, "
            f"val={int(self.val_sizes.sum())}, test={len(self.test_x)}, "
            f"features={self.feature_shape}, classes={self.num_classes})"
        )

    @property
    def num_clients(self) -> int:
        return len(self.offsets) - 1

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def train_sizes(self) -> np.ndarray:
        """int64 (C,): training rows per client."""
        return self.n_train

    @property
    def val_sizes(self) -> np.ndarray:
        """int64 (C,): validation rows per client."""
        assert self.n_val is not None  # set in __post_init__
        return self.n_val

    def client_train(self, c: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Training rows of client ``c`` (views, no copy)."""
        start = int(self.offsets[c])
        stop = start + int(self.n_train[c])
        return self.x[start:stop], self.y[start:stop]

    def client_val(self, c: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Validation rows of client ``c`` (views, no copy)."""
        stop = int(self.offsets[c + 1])
        start = stop - int(self.val_sizes[c])
        return self.x[start:stop], self.y[start:stop]

    def with_fraction(self, fraction: float) -> FederatedDataset:
        """Keep the first ``max(1, ceil(fraction * n_train[c]))`` training rows of each client.

        Relative to the current ``n_train``; shares the tensors; validation rows are unchanged
        (a fidelity knob). ``ceil`` forgives float noise of 1e-9 (0.3 * 10 keeps 3 rows, not 4).
        """
        if not 0.0 < fraction <= 1.0:
            raise ConfigError(f"must be in (0, 1], got {fraction}", key="data.fraction")
        kept = np.maximum(1, np.ceil(fraction * self.n_train - 1e-9)).astype(np.int64)
        return replace(
            self,
            n_train=np.minimum(kept, self.n_train),
            n_val=self.val_sizes,
            fraction=self.fraction * fraction,
        )

    def at_fraction(self, fraction: float) -> FederatedDataset:
        """This dataset with ``fraction`` of each client's training rows (``data.fraction``):
        itself if built with that fraction (as :func:`build_dataset` does), cut from the
        whole if built with all of them; a dataset cut otherwise is a ValueError."""
        if fraction == self.fraction:
            return self
        if self.fraction == 1.0:
            return self.with_fraction(fraction)
        raise ValueError(
            f"the dataset given was built with data fraction {self.fraction:g}, but the "
            f"config's data.fraction is {fraction:g}; pass it built with fraction 1 or "
            f"{fraction:g}"
        )

    def val_rows(self, clients: Sequence[int] | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The validation rows of ``clients``, concatenated in that order (a copy)."""
        c = np.asarray(clients, dtype=np.int64)
        lengths = self.val_sizes[c]
        positions = torch.from_numpy(segment_positions(self.offsets[c + 1] - lengths, lengths))
        return self.x[positions], self.y[positions]


def _tensor(a: np.ndarray) -> torch.Tensor:
    """A tensor sharing ``a``'s memory (copied only if ``a`` is read-only or not contiguous)."""
    a = np.ascontiguousarray(a)
    return torch.from_numpy(a if a.flags.writeable else a.copy())


def _client_order(indices: np.ndarray, sizes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``indices`` with each client's segment shuffled (sort by client, then a random key)."""
    owner = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    return indices[np.lexsort((rng.random(len(indices)), owner))]


def _grouped_rows(data: ArrayData, part: Partition, cfg: DataConfig) -> tuple[np.ndarray, ...]:
    """x, y in client order, shuffled inside each client: one gather, or none at all."""
    natural = (cfg.partition.method or "natural") == "natural" and data.client is not None
    if natural and data.presorted:
        if len(part.indices) == len(data.y):  # nothing dropped: the rows are already in place
            return data.x, data.y
        return data.x[part.indices], data.y[part.indices]
    order = _client_order(part.indices, part.sizes, stream_rng(cfg.seed, "client-shuffle"))
    return data.x[order], data.y[order]


def _warn_no_validation(val_fraction: float, sizes: np.ndarray) -> None:
    """A run validates on nothing (metrics NaN); ``fedhpo tune`` refuses a validation
    objective on such data before it writes a study (``fedhpo.tune._checks``)."""
    warnings.warn(
        f"data.val_fraction {val_fraction:g} gives no validation rows: a client keeps "
        f"round({val_fraction:g} x its rows) and the largest of the {len(sizes)} clients has "
        f"{int(sizes.max())} rows, so validation metrics are NaN; raise data.val_fraction or "
        "give clients more rows, or set it to 0 to run without validation",
        stacklevel=3,
    )


def federate(data: ArrayData, cfg: DataConfig, name: str) -> FederatedDataset:
    """Partition ``data`` into clients, shuffle inside each client, split train/validation.

    Rows are reordered by client with one gather (the only copy of ``x``). Presorted naturally
    federated data (``data.presorted``: rows already grouped and shuffled) whose clients all
    survive ``min_size`` is used as it is, without any copy. Each client keeps
    ``round(val_fraction * n)`` (half to even) rows for validation but at least one training
    row (a warning if no client keeps a validation row at ``val_fraction > 0``);
    ``cfg.fraction`` is then applied with :meth:`FederatedDataset.with_fraction`.
    """
    part = partition(data.y, cfg.partition, data.client, stream_rng(cfg.seed, "partition"))
    x, y = _grouped_rows(data, part, cfg)
    sizes = part.sizes
    n_val = np.minimum(np.round(cfg.val_fraction * sizes).astype(np.int64), sizes - 1)
    if cfg.val_fraction > 0 and not n_val.any():
        _warn_no_validation(cfg.val_fraction, sizes)
    dataset = FederatedDataset(
        x=_tensor(x),
        y=_tensor(y),
        offsets=part.offsets,
        n_train=sizes - n_val,
        test_x=_tensor(data.test_x),
        test_y=_tensor(data.test_y),
        num_classes=data.num_classes,
        name=name,
        dropped_rows=data.dropped_rows,
    )
    return dataset if cfg.fraction >= 1.0 else dataset.with_fraction(cfg.fraction)
