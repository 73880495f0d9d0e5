"""Dataset registry (name -> builder) and the built-in builders: synthetic, W, IDX, CSV, LEAF."""

from __future__ import annotations

import gzip
import inspect
import json
import math
import os
import types
import typing
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedhpo.config import DataConfig
from fedhpo.errors import ConfigError, DataError
from fedhpo.sim.data import ArrayData, FederatedDataset, federate, stream_rng

__all__ = [
    "REQUIRED",
    "build_dataset",
    "dataset_options",
    "list_datasets",
    "register_dataset",
]

Builder = Callable[..., ArrayData]


class _Required:
    def __repr__(self) -> str:
        return "<required>"


REQUIRED: Any = _Required()
"""The 'default' :func:`dataset_options` reports for an option that has none."""

_REGISTRY: dict[str, Builder] = {}

# ------------------------------------------------------------------------------ registry


def _qualname(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _check_signature(fn: Builder) -> None:
    params = inspect.signature(fn).parameters
    bad = [p.name for p in params.values() if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    if bad or "seed" not in params:
        raise TypeError(
            f"dataset builder {_qualname(fn)} must look like fn(*, seed, <options>=<default>) "
            f"(keyword-only parameters, one named seed); offending parameters: {bad or 'seed'}"
        )


def register_dataset(name: str) -> Callable[[Builder], Builder]:
    """Decorator: make ``fn(*, seed, **options) -> ArrayData`` buildable as ``data.name``.

    Every parameter must be keyword-only; all but ``seed`` are the dataset's options
    (``data.options``), typed by their annotations. A taken name raises ``ValueError``, a
    builder of another shape ``TypeError``.
    """

    def decorator(fn: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(
                f"a dataset named {name!r} is already registered ({_qualname(_REGISTRY[name])}); "
                f"register {_qualname(fn)} under another name"
            )
        _check_signature(fn)
        _REGISTRY[name] = fn
        return fn

    return decorator


def list_datasets() -> list[str]:
    """Registered dataset names, sorted."""
    return sorted(_REGISTRY)


def _builder(name: str) -> Builder:
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown dataset {name!r}; registered: {', '.join(list_datasets())}", key="data.name"
        )
    return _REGISTRY[name]


def _option_params(fn: Builder) -> dict[str, inspect.Parameter]:
    params = inspect.signature(fn).parameters
    return {k: p for k, p in params.items() if k != "seed"}


def dataset_options(name: str) -> dict[str, Any]:
    """Option name -> default of dataset ``name`` (:data:`REQUIRED` when there is none)."""
    params = _option_params(_builder(name))
    return {k: REQUIRED if p.default is p.empty else p.default for k, p in params.items()}


def _allowed_types(fn: Builder, param: inspect.Parameter) -> tuple[type, ...] | None:
    """Types an option accepts, from its annotation or else its default; None: anything."""
    try:
        tp = typing.get_type_hints(fn).get(param.name)
    except Exception:  # an annotation that cannot be resolved: judge by the default
        tp = None
    if tp is None:
        default = param.default
        return None if default is None or default is param.empty else (type(default),)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
    else:
        args = (tp,)
    if Any in args:
        return None
    literals = [
        type(v) for a in args if typing.get_origin(a) is typing.Literal for v in typing.get_args(a)
    ]
    plain = [typing.get_origin(a) or a for a in args if typing.get_origin(a) is not typing.Literal]
    return tuple(dict.fromkeys(plain + literals))


def _coerce_option(value: Any, allowed: tuple[type, ...] | None) -> tuple[bool, Any]:
    """(ok, value in canonical form); ints are accepted for floats and paths for strings."""
    if allowed is None or (value is None and type(None) in allowed):
        return True, value
    if isinstance(value, bool):
        return bool in allowed, value
    if isinstance(value, int) and int not in allowed and float in allowed:
        return True, float(value)
    if isinstance(value, float) and float not in allowed and int in allowed:
        return value.is_integer(), int(value) if value.is_integer() else value
    if isinstance(value, os.PathLike) and str in allowed:
        return True, os.fspath(value)
    return isinstance(value, allowed), value


def _type_names(allowed: tuple[type, ...]) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in allowed)


def _validated_options(name: str, fn: Builder, options: Mapping[str, Any]) -> dict[str, Any]:
    params = _option_params(fn)
    valid = ", ".join(params) or "(none)"
    out: dict[str, Any] = {}
    for key, value in options.items():
        where = f"data.options.{key}"
        if key not in params:
            raise ConfigError(f"unknown option of dataset {name!r}; valid: {valid}", key=where)
        allowed = _allowed_types(fn, params[key])
        ok, out[key] = _coerce_option(value, allowed)
        if not ok:
            raise ConfigError(
                f"expected {_type_names(allowed or ())}, got {value!r} ({type(value).__name__})",
                key=where,
            )
    for key, p in params.items():
        if p.default is p.empty and key not in out:
            raise ConfigError(
                f"dataset {name!r} needs this option; give it as data.options.{key}",
                key=f"data.options.{key}",
            )
    return out


def build_dataset(cfg: DataConfig) -> FederatedDataset:
    """Build ``cfg.name`` with ``cfg.options``, then partition and split it (:func:`federate`)."""
    fn = _builder(cfg.name)
    options = _validated_options(cfg.name, fn, cfg.options)
    data = fn(seed=cfg.seed, **options)
    if not isinstance(data, ArrayData):
        raise DataError(
            f"builder {_qualname(fn)} returned {type(data).__name__}; it must return ArrayData",
            key="data.name",
        )
    return federate(data, cfg, cfg.name)


def _option(ok: bool, option: str, message: str) -> None:
    if not ok:
        raise ConfigError(message, key=f"data.options.{option}")


# ---------------------------------------------------------------------- FedProx synthetic


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
    for opt, value in (("num_clients", num_clients), ("dim", dim), ("num_classes", num_classes)):
        _option(value >= 1, opt, f"must be >= 1, got {value}")
    _option(alpha >= 0 and beta >= 0, "alpha", "alpha and beta must be >= 0")
    rng = stream_rng(seed, "synthetic")
    sizes = rng.lognormal(4, 2, num_clients).astype(np.int64) + 50
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


# ------------------------------------------------------------------ benchmark workload W

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
    _option(num_clients >= 1, "num_clients", f"must be >= 1, got {num_clients}")
    teacher = _w_teacher(stream_rng(seed, "workload_w/teacher"))
    rng = stream_rng(seed, "workload_w/clients")
    client, y = _w_labels(rng, _w_sizes(rng, num_clients))
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


# -------------------------------------------------------------------------- IDX (MNIST)

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read: {exc}", source=str(path), key="data.options.path") from None


def read_idx(path: str | Path) -> np.ndarray:
    """The array in an IDX file (gzipped if its name ends in .gz), header checked."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] not in _IDX_DTYPES:
        raise DataError(
            f"not an IDX file: magic bytes {raw[:4].hex() or '(empty)'}, expected 0000 then a "
            "type code (08 ubyte ... 0e double) and the number of dimensions, e.g. 00000803",
            source=str(path),
            key="data.options.path",
        )
    ndim, dtype = raw[3], np.dtype(_IDX_DTYPES[raw[2]])
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4)) if len(raw) >= header else ()
    expected = header + math.prod(dims) * dtype.itemsize
    if len(raw) < header or len(raw) != expected:
        raise DataError(
            f"IDX file is {len(raw)} bytes but its header ({dims}, {dtype}) needs {expected}; "
            "the file is truncated or corrupt",
            source=str(path),
            key="data.options.path",
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(dims)


def _idx_file(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"missing {folder / name} (or {name}.gz); an IDX folder needs the files "
        f"{', '.join(_IDX_FILES)}, each optionally gzipped (.gz)",
        key="data.options.path",
    )


def _idx_split(images: Path, labels: Path, normalize: bool) -> tuple[np.ndarray, np.ndarray]:
    img, lab = read_idx(images), read_idx(labels)
    if lab.ndim != 1 or img.ndim < 2 or len(img) != len(lab):
        raise DataError(
            f"{images.name} holds {img.shape} and {labels.name} holds {lab.shape}; expected "
            "(N, H, W) images and N labels",
            source=str(images.parent),
            key="data.options.path",
        )
    x = img.astype(np.float32)
    if normalize:
        np.divide(x, np.float32(255), out=x)
    return (x[:, None] if x.ndim == 3 else x), lab.astype(np.int64)


@register_dataset("idx")
def idx(*, seed: int, path: str, normalize: bool = True) -> ArrayData:
    """MNIST-style IDX files (e.g. Fashion-MNIST) in folder ``path``; images -> (N, 1, H, W).

    ``normalize`` divides pixels by 255. ``seed`` is unused (the files fix everything).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(
            f"{folder} is not a folder; give the folder holding {', '.join(_IDX_FILES)}",
            key="data.options.path",
        )
    files = [_idx_file(folder, name) for name in _IDX_FILES]
    x, y = _idx_split(files[0], files[1], normalize)
    test_x, test_y = _idx_split(files[2], files[3], normalize)
    if min(y.min(), test_y.min()) < 0:
        raise DataError("IDX labels must be >= 0", source=str(folder), key="data.options.path")
    num_classes = int(max(y.max(), test_y.max())) + 1
    return ArrayData(x, y, None, test_x, test_y, num_classes)


# ------------------------------------------------------------------------- CSV / Parquet


_TABLE_SUFFIXES = ".csv, .csv.gz or .parquet"


def _read_parquet(path: Path, key: str) -> Any:
    import pandas as pd

    try:
        import pyarrow
    except ImportError:
        raise DataError(
            "reading Parquet needs pyarrow, which is not installed; pip install "
            "'fedhpo[parquet]' (or pyarrow), or convert the file to CSV",
            source=str(path),
            key=key,
        ) from None
    try:
        return pd.read_parquet(path, engine="pyarrow")
    except (ValueError, OSError, pyarrow.ArrowException) as exc:
        raise DataError(f"cannot read as Parquet: {exc}", source=str(path), key=key) from None


def _read_table(path: str, header: bool, skiprows: int, key: str) -> Any:
    """A pandas DataFrame from a CSV (optionally gzipped) or Parquet file; '?' reads as NaN."""
    import pandas as pd

    file = Path(path)
    if not file.is_file():
        raise DataError(f"file not found; give a {_TABLE_SUFFIXES} file", source=path, key=key)
    if file.suffix.lower() in (".parquet", ".pq"):
        return _read_parquet(file, key)
    try:
        return pd.read_csv(
            file,
            header=0 if header else None,
            skiprows=skiprows,
            skipinitialspace=True,
            na_values=["?"],
        )
    except (ValueError, OSError, EOFError, zlib.error) as exc:
        detail = " ".join(str(exc).split())
        raise DataError(
            f"cannot read as CSV ({type(exc).__name__}: {detail}); check the header, skiprows "
            "and that fields are separated by commas",
            source=path,
            key=key,
        ) from None


def _stack(train: Any, test: Any, paths: tuple[str, str | None]) -> tuple[Any, np.ndarray | None]:
    """Train and test frames in one (same columns), and which rows are test rows."""
    import pandas as pd

    if test is None:
        return train, None
    if len(test.columns) != len(train.columns) or set(test.columns) != set(train.columns):
        raise DataError(
            f"the test file has columns {list(test.columns)[:12]} but the training file "
            f"{paths[0]} has {list(train.columns)[:12]}; both need the same columns",
            source=paths[1],
            key="data.options.test_path",
        )
    frame = pd.concat([train, test[list(train.columns)]], ignore_index=True)
    return frame, np.arange(len(frame)) >= len(train)


def _is_numeric(column: Any) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column))


def _clean_text(column: Any) -> Any:
    """Strip a text column, '?' -> missing; all-number text (e.g. Parquet strings) -> numbers."""
    import pandas as pd

    text = column.astype("string").str.strip()
    text = text.mask((text == "?") | (text == ""))
    numbers = pd.to_numeric(text, errors="coerce")
    return numbers if numbers.notna().sum() == text.notna().sum() > 0 else text


def _clean(frame: Any) -> tuple[Any, np.ndarray]:
    """Clean text columns; (frame without rows that miss a value, kept-row mask)."""
    frame = frame.copy()
    for col in frame.columns:
        if not _is_numeric(frame[col]):
            frame[col] = _clean_text(frame[col])
    keep = frame.notna().all(axis=1).to_numpy()
    return frame[keep], keep


def _column(frame: Any, spec: str | int, option: str, header: bool) -> Any:
    """The column label that option ``spec`` (a name, or an index with -1 = last) refers to."""
    columns = list(frame.columns)
    if isinstance(spec, int):
        _option(
            -len(columns) <= spec < len(columns),
            option,
            f"column index {spec} is out of range: the file has {len(columns)} columns",
        )
        return columns[spec]
    _option(header, option, "with header=false columns have no names; give a 0-based index")
    _option(spec in columns, option, f"no column {spec!r}; columns: {columns[:30]}")
    return spec


def _encode_labels(column: Any, strip: bool) -> tuple[np.ndarray, int]:
    """Labels -> 0..K-1 by sorted unique value (text labels lose a trailing '.' if ``strip``)."""
    import pandas as pd

    if strip and not _is_numeric(column):
        column = column.str.rstrip(".").str.strip()
    codes, uniques = pd.factorize(column, sort=True)
    return codes.astype(np.int64), len(uniques)


def _feature_width(frame: Any) -> int:
    return sum(1 if _is_numeric(frame[c]) else frame[c].nunique() for c in frame.columns)


def _encode_features(frame: Any, train: np.ndarray, standardize: bool) -> np.ndarray:
    """float32 features: numeric columns (z-scored with training stats), text one-hot."""
    import pandas as pd

    x = np.zeros((len(frame), _feature_width(frame)), dtype=np.float32)
    j = 0
    for col in frame.columns:
        if _is_numeric(frame[col]):
            v = frame[col].to_numpy(dtype=np.float64)
            if standardize:
                std = v[train].std()
                v = (v - v[train].mean()) / (std if std > 0 and np.isfinite(std) else 1.0)
            x[:, j] = v
            j += 1
        else:
            codes, uniques = pd.factorize(frame[col], sort=True)
            x[np.arange(len(frame)), j + codes] = 1.0
            j += len(uniques)
    return x


def _split_mask(n: int, test_fraction: float, seed: int) -> np.ndarray:
    """A seeded random test mask with round(test_fraction * n) rows (at least 1, at most n-1)."""
    if n < 2:
        raise DataError(
            f"only {n} complete row(s); cannot split off a test set", key="data.options.path"
        )
    n_test = min(n - 1, max(1, round(test_fraction * n)))
    mask = np.zeros(n, dtype=bool)
    mask[stream_rng(seed, "csv/split").permutation(n)[:n_test]] = True
    return mask


@register_dataset("csv")
def csv(
    *,
    seed: int,
    path: str,
    label: str | int = -1,
    header: bool = True,
    client_column: str | int | None = None,
    test_path: str | None = None,
    test_fraction: float = 0.2,
    standardize: bool = True,
    label_strip: bool = True,
    skiprows: int = 0,
    test_skiprows: int = 0,
) -> ArrayData:
    """A table from CSV (.csv, .csv.gz, any other non-Parquet name) or Parquet (.parquet).

    ``label``/``client_column``: column name or 0-based index (-1 = last). Rows with a missing
    value ('?' or empty) are dropped; text columns are one-hot encoded (categories from train
    and test together, so both get the same columns); numeric columns are z-scored with
    training-split statistics if ``standardize``. Labels map to 0..K-1 in sorted order, text
    labels stripped of whitespace and a trailing '.' if ``label_strip`` (UCI Adult's test
    file). Without ``test_path``, a seeded random ``test_fraction`` of rows is the test set.
    ``header``/``skiprows``/``test_skiprows`` apply to CSV files only.
    """
    _option(0.0 < test_fraction < 1.0, "test_fraction", f"must be in (0, 1), got {test_fraction}")
    _option(skiprows >= 0 and test_skiprows >= 0, "skiprows", "skiprows must be >= 0")
    train = _read_table(path, header, skiprows, "data.options.path")
    test = None
    if test_path is not None:
        test = _read_table(test_path, header, test_skiprows, "data.options.test_path")
    frame, is_test = _stack(train, test, (path, test_path))
    label_col = _column(frame, label, "label", header)
    client_col = None
    if client_column is not None:
        client_col = _column(frame, client_column, "client_column", header)
        _option(client_col != label_col, "client_column", "must differ from the label column")
    frame, keep = _clean(frame)
    is_test = _split_mask(len(frame), test_fraction, seed) if is_test is None else is_test[keep]
    return _table_arrays(frame, label_col, client_col, is_test, standardize, label_strip)


def _table_arrays(
    frame: Any, label_col: Any, client_col: Any, is_test: np.ndarray, standardize: bool, strip: bool
) -> ArrayData:
    import pandas as pd

    if not is_test.any() or is_test.all():
        raise DataError(
            "no complete training or test rows are left after dropping rows with missing "
            "values ('?' or empty)",
            key="data.options.path",
        )
    y, num_classes = _encode_labels(frame[label_col], strip)
    features = frame.drop(columns=[c for c in (label_col, client_col) if c is not None])
    if features.shape[1] == 0:
        raise DataError("the table has no feature columns besides the label", key="data.options")
    x = _encode_features(features, ~is_test, standardize)
    client = None
    if client_col is not None:
        client = pd.factorize(frame[client_col][~is_test], sort=True)[0].astype(np.int64)
    train = ~is_test
    return ArrayData(x[train], y[train], client, x[is_test], y[is_test], num_classes)


# ------------------------------------------------------------------------------ LEAF JSON


def _leaf_dirs(path: str | None, train_path: str | None, test_path: str | None) -> list[Path]:
    if path is not None:
        _option(
            train_path is None and test_path is None,
            "path",
            "give path, or train_path and test_path, not both",
        )
        return [Path(path) / "train", Path(path) / "test"]
    _option(
        train_path is not None and test_path is not None,
        "path",
        "give path (a folder with train/ and test/ folders of LEAF *.json files), "
        "or both train_path and test_path",
    )
    return [Path(str(train_path)), Path(str(test_path))]


def _leaf_bad(file: Path, message: str) -> DataError:
    return DataError(
        f"{message}; a LEAF file is a JSON object with 'users' (a list) and 'user_data' "
        "({user: {'x': [...], 'y': [...]}})",
        source=str(file),
        key="data.options.path",
    )


def _leaf_load(file: Path) -> dict[str, Any]:
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _leaf_bad(file, f"cannot read JSON ({exc})") from None
    ok = isinstance(doc, dict) and isinstance(doc.get("users"), list)
    if not ok or not isinstance(doc.get("user_data"), dict):
        raise _leaf_bad(file, "missing or malformed 'users' / 'user_data'")
    return doc


def _leaf_user(file: Path, user: Any, entry: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(entry, dict) or "x" not in entry or "y" not in entry:
        raise _leaf_bad(file, f"user {user!r} has no 'x' and 'y' in 'user_data'")
    try:
        x, y = np.asarray(entry["x"]), np.asarray(entry["y"])
    except ValueError:
        raise _leaf_bad(file, f"user {user!r}: rows of 'x' differ in shape") from None
    if len(x) and x.dtype.kind not in "biuf":
        raise DataError(
            f"user {user!r} has non-numeric x (dtype {x.dtype}); only numeric features are "
            "supported: encode text or characters as numbers first",
            source=str(file),
            key="data.options.path",
        )
    if y.ndim != 1 or len(x) != len(y):
        raise _leaf_bad(file, f"user {user!r}: 'y' must be a list with one label per row of 'x'")
    return x.astype(np.float32).reshape(len(x), -1) if x.ndim == 1 else x.astype(np.float32), y


def _leaf_read(folder: Path) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """(user, x, y) of every user with data in the *.json files of ``folder`` (sorted by name)."""
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        raise DataError(
            f"no *.json files in {folder}; LEAF data needs train/ and test/ folders of JSON files",
            key="data.options.path",
        )
    users, xs, ys = [], [], []
    for file in files:
        doc = _leaf_load(file)
        for user in doc["users"]:
            x, y = _leaf_user(file, user, doc["user_data"].get(user))
            if len(y):
                users.append(str(user))
                xs.append(x)
                ys.append(y)
    return users, xs, ys


def _leaf_labels(ys: list[np.ndarray]) -> tuple[np.ndarray, int]:
    """Non-negative integer labels are kept; anything else maps to 0..K-1 by sorted value."""
    y = np.concatenate(ys)
    if y.dtype.kind in "biuf" and np.all(y >= 0) and np.all(np.mod(y, 1) == 0):
        return y.astype(np.int64), int(y.max()) + 1
    uniques, codes = np.unique(y, return_inverse=True)
    return codes.astype(np.int64).ravel(), len(uniques)


@register_dataset("leaf")
def leaf(
    *,
    seed: int,
    path: str | None = None,
    train_path: str | None = None,
    test_path: str | None = None,
) -> ArrayData:
    """LEAF JSON (FEMNIST, Sent140 features, FedProx synthetic, ...); users are the clients.

    ``path``: a folder with ``train/`` and ``test/`` subfolders of *.json, or give those two
    folders as ``train_path`` and ``test_path``. The test set is every user's test data.
    Only numeric ``x`` is supported. ``seed`` is unused.
    """
    train_dir, test_dir = _leaf_dirs(path, train_path, test_path)
    users, xs, ys = _leaf_read(train_dir)
    _, test_xs, test_ys = _leaf_read(test_dir)
    shapes = {x.shape[1:] for x in xs + test_xs}
    if len(shapes) > 1:
        raise DataError(f"users' x rows differ in shape: {sorted(shapes)}", key="data.options.path")
    ids: dict[str, int] = {}
    client = np.repeat([ids.setdefault(u, len(ids)) for u in users], [len(y) for y in ys])
    y_all, num_classes = _leaf_labels(ys + test_ys)
    n = int(client.size)
    return ArrayData(
        x=np.concatenate(xs),
        y=y_all[:n],
        client=client.astype(np.int64),
        test_x=np.concatenate(test_xs),
        test_y=y_all[n:],
        num_classes=num_classes,
    )
