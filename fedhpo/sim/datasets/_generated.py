"""Generated datasets: FedProx's Synthetic(alpha, beta) and the benchmark workload W."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedhpo.errors import ConfigError
from fedhpo.sim.data import ArrayData, stream_rng
from fedhpo.sim.datasets._registry import _option, register_dataset

#: Most clients of a generated dataset (its per-client sizes are drawn first, one number
#: each): 1,000 times workload W's.
MAX_CLIENTS = 1_000_000
#: Most values (features, and Synthetic's per-client model weights) a generated dataset may
#: draw: 1e9, 4 GB as float32, 270 times workload W. A larger draw ran out of memory, or was
#: killed by the system, before it could say so; the check comes before anything is drawn.
MAX_VALUES = 10**9


def _count(value: int, option: str, most: int | None = None) -> None:
    _option(value >= 1, option, f"must be >= 1, got {value}")
    if most is not None:
        _option(value <= most, option, f"must be at most {most}, got {value}")


def _values(values: int, key: str, what: str, fix: str) -> None:
    if values > MAX_VALUES:
        raise ConfigError(
            f"{what} are {values:.1e} values, more than {MAX_VALUES:.0e} values (4 GB as "
            f"float32); lower {fix}",
            key=key,
        )


def _fedprox_device(
    rng: np.random.Generator, n: int, mean: np.ndarray, sd: np.ndarray, w: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One device: x ~ N(mean, diag(sd^2)); y = argmax(x w + b) (= argmax of the softmax)."""
    x = mean + sd * rng.standard_normal((n, len(mean)))
    return x.astype(np.float32), np.argmax(x @ w + b, axis=1).astype(np.int64)


@register_dataset("synthetic")
def synthetic(
    *,
    seed: int,
    alpha: float = 1.0,
    beta: float = 1.0,
    iid: bool = False,
    num_clients: int = 30,
    dim: int = 60,
    num_classes: int = 10,
) -> ArrayData:
    """FedProx's Synthetic(alpha, beta) (Li et al., 2020), drawn as its generator scripts do.

    Per device k: n_k = int(lognormal(4, 2)) + 50; u_k ~ N(0, alpha) and B_k ~ N(0, beta)
    (alpha, beta are standard deviations, as in the code); v_k ~ N(B_k, 1) per feature;
    W_k ~ N(u_k, 1), b_k ~ N(u_k, 1); x ~ N(v_k, Sigma), Sigma_jj = (j+1)^-1.2. ``iid``: one
    W, b ~ N(0, 1) and x ~ N(0, Sigma) (generate_iid.py). The first int(0.9 n_k) rows of a
    device are its training rows and the rest join the global test set (rows are i.i.d.
    inside a device, so this is FedProx's shuffled 90/10 split).
    """
    _count(num_clients, "num_clients", MAX_CLIENTS)
    _count(dim, "dim")
    _count(num_classes, "num_classes")
    for opt, value in (("alpha", alpha), ("beta", beta)):  # each names its own key
        ok = math.isfinite(value) and value >= 0
        _option(ok, opt, f"must be a finite number >= 0, got {value}")
    rng = stream_rng(seed, "synthetic")
    sizes = rng.lognormal(4, 2, num_clients).astype(np.int64) + 50
    rows = int(sizes.sum())
    _values(
        rows * dim + num_clients * (dim + 1) * num_classes,
        "data.options",
        f"{num_clients} clients of {rows:,} rows in all, dim {dim} and {num_classes} classes "
        "(features and the clients' models)",
        "num_clients, dim or num_classes",
    )
    sd = np.power(np.arange(1, dim + 1, dtype=np.float64), -1.2) ** 0.5
    if iid:
        means = np.zeros((num_clients, dim))
        w, b = rng.normal(0, 1, (dim, num_classes)), rng.normal(0, 1, num_classes)
        params: Any = ((w, b) for _ in range(num_clients))
    else:
        mean_w, big_b = rng.normal(0, alpha, num_clients), rng.normal(0, beta, num_clients)
        means = rng.normal(big_b[:, None], 1, (num_clients, dim))
        params = (
            (rng.normal(m, 1, (dim, num_classes)), rng.normal(m, 1, num_classes)) for m in mean_w
        )
    devices = []
    for i, (n, (w, b)) in enumerate(zip(sizes, params, strict=False)):
        devices.append(_fedprox_device(rng, int(n), means[i], sd, w, b))
    return _split_devices(devices, num_classes)


def _split_devices(devices: list[tuple[np.ndarray, np.ndarray]], num_classes: int) -> ArrayData:
    n_train = np.array([int(0.9 * len(y)) for _, y in devices], dtype=np.int64)
    train = [(x[:t], y[:t]) for (x, y), t in zip(devices, n_train, strict=True)]
    test = [(x[t:], y[t:]) for (x, y), t in zip(devices, n_train, strict=True)]
    return ArrayData(
        x=np.concatenate([x for x, _ in train]),
        y=np.concatenate([y for _, y in train]),
        client=np.repeat(np.arange(len(devices), dtype=np.int64), n_train),
        test_x=np.concatenate([x for x, _ in test]),
        test_y=np.concatenate([y for _, y in test]),
        num_classes=num_classes,
        presorted=True,
    )


_W_DIM, _W_HIDDEN, _W_CLASSES = 60, 32, 10
_W_CHUNK = 1 << 16


@dataclass(frozen=True)
class _Teacher:
    """A fixed random MLP 60 -> 32 -> 10 (ReLU) that labels x, with Gaussian logit noise."""

    w1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    noise_std: np.float32

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x @ self.w1, 0) @ self.w2 + self.b2

    def label(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        logits = self.logits(x)
        noise = rng.standard_normal(logits.shape, dtype=np.float32)
        return np.argmax(logits + self.noise_std * noise, axis=1)


def _balance_bias(logits: np.ndarray, steps: int = 200) -> np.ndarray:
    """Output bias making the argmax classes of ``logits`` about equally frequent."""
    k = logits.shape[1]
    bias = np.zeros(k, dtype=np.float32)
    step = np.float32(0.5 * logits.std())
    for _ in range(steps):
        freq = np.bincount(np.argmax(logits + bias, axis=1), minlength=k) / len(logits)
        bias -= step * np.log((freq + 1e-4) * k).astype(np.float32)
    return bias


def _w_teacher(rng: np.random.Generator) -> _Teacher:
    """Weights N(0, 1/fan_in); bias balanced on 20k draws; noise std 0.05 x the logits' std."""
    w1 = rng.standard_normal((_W_DIM, _W_HIDDEN), dtype=np.float32) / np.float32(_W_DIM**0.5)
    w2 = rng.standard_normal((_W_HIDDEN, _W_CLASSES), dtype=np.float32)
    w2 /= np.float32(_W_HIDDEN**0.5)
    zero = np.zeros(_W_CLASSES, dtype=np.float32)
    calib = _Teacher(w1, w2, zero, np.float32(0)).logits(
        rng.standard_normal((20_000, _W_DIM), dtype=np.float32)
    )
    b2 = _balance_bias(calib)
    return _Teacher(w1, w2, b2, np.float32(0.05 * (calib + b2).std()))


def _w_sizes(rng: np.random.Generator, num_clients: int) -> np.ndarray:
    raw = rng.lognormal(0.0, 0.8, num_clients)
    return np.maximum(10, np.rint(raw * (60.0 / raw.mean()))).astype(np.int64)


def _w_labels(rng: np.random.Generator, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(client, y) per row: each row's class ~ its client's Dirichlet(0.5) class mix.

    Drawing each row's class independently gives multinomial class counts per client and rows
    already in random order. Inverse-CDF sampling over all clients at once.
    """
    c, k = len(sizes), _W_CLASSES
    cdf = np.cumsum(rng.dirichlet(np.full(k, 0.5), c), axis=1)
    cdf[:, -1] = 1.0
    flat = (cdf + np.arange(c)[:, None]).ravel()
    client = np.repeat(np.arange(c, dtype=np.int64), sizes)
    y = np.searchsorted(flat, client + rng.random(len(client)), side="right") - client * k
    return client, np.minimum(y, k - 1)


def _fill_from_pools(
    x: np.ndarray, y: np.ndarray, teacher: _Teacher, rng: np.random.Generator
) -> None:
    """Write into ``x[i]`` a row of class ``y[i]`` taken from that class's pool.

    The pool of class k is the stream of teacher-labelled x ~ N(0, I) rows whose label is k;
    rows are generated in float32 chunks and the next unused ones of each class go straight
    to the rows that need that class (no pool is ever stored; surplus rows are discarded).
    """
    dest = np.argsort(y.astype(np.uint8), kind="stable")  # row positions grouped by class
    need = np.bincount(y, minlength=_W_CLASSES)
    start = np.concatenate(([0], np.cumsum(need)[:-1]))
    filled = np.zeros(_W_CLASSES, dtype=np.int64)
    while np.any(filled < need):
        chunk = rng.standard_normal((_W_CHUNK, _W_DIM), dtype=np.float32)
        labels = teacher.label(chunk, rng)
        for k in np.flatnonzero(filled < need):
            rows = np.flatnonzero(labels == k)[: need[k] - filled[k]]
            at = start[k] + filled[k]
            x[dest[at : at + len(rows)]] = chunk[rows]
            filled[k] += len(rows)


@register_dataset("workload_w")
def workload_w(*, seed: int, num_clients: int = 1000) -> ArrayData:
    """The benchmark workload W of the engineering guide (see its definition there).

    Rows come out grouped by client and in random order inside each client (``presorted``),
    written in place into one float32 array, so :func:`federate` makes no copy of them.
    """
    _count(num_clients, "num_clients", MAX_CLIENTS)
    rng = stream_rng(seed, "workload_w/clients")
    sizes = _w_sizes(rng, num_clients)
    rows = int(sizes.sum())
    what = f"{num_clients} clients ({rows:,} rows of {_W_DIM} features)"
    _values(rows * _W_DIM, "data.options.num_clients", what, "num_clients")
    teacher = _w_teacher(stream_rng(seed, "workload_w/teacher"))
    client, y = _w_labels(rng, sizes)
    x = np.empty((len(y), _W_DIM), dtype=np.float32)
    _fill_from_pools(x, y, teacher, stream_rng(seed, "workload_w/pools"))
    test_rng = stream_rng(seed, "workload_w/test")
    test_x = test_rng.standard_normal((10_000, _W_DIM), dtype=np.float32)
    return ArrayData(
        x=x,
        y=y.astype(np.int64, copy=False),
        client=client,
        test_x=test_x,
        test_y=teacher.label(test_x, test_rng).astype(np.int64),
        num_classes=_W_CLASSES,
        presorted=True,
    )
