"""MNIST-style IDX files (gzipped or not), e.g. Fashion-MNIST."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from fedhpo.errors import DataError, DataMissingError
from fedhpo.sim.data import ArrayData
from fedhpo.sim.datasets._registry import register_dataset, relative_note

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
    raise DataMissingError(
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
        raise DataMissingError(
            f"{folder}{relative_note(folder)} is not a folder; give the folder holding "
            f"{', '.join(_IDX_FILES)}",
            key="data.options.path",
        )
    files = [_idx_file(folder, name) for name in _IDX_FILES]
    x, y = _idx_split(files[0], files[1], normalize)
    test_x, test_y = _idx_split(files[2], files[3], normalize)
    if min(y.min(), test_y.min()) < 0:
        raise DataError("IDX labels must be >= 0", source=str(folder), key="data.options.path")
    num_classes = int(max(y.max(), test_y.max())) + 1
    return ArrayData(x, y, None, test_x, test_y, num_classes)
