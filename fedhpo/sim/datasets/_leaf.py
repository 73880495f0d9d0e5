"""LEAF JSON federations (users, user_data, num_samples)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fedhpo.errors import DataError, DataMissingError
from fedhpo.sim.data import ArrayData
from fedhpo.sim.datasets._registry import _option, register_dataset, relative_note


def _leaf_dirs(
    path: str | None, train_path: str | None, test_path: str | None
) -> list[tuple[Path, str]]:
    """The train and test folders, each with the option that gave it (for errors)."""
    if path is not None:
        _option(
            train_path is None and test_path is None,
            "path",
            "give path, or train_path and test_path, not both",
        )
        key = "data.options.path"
        return [(Path(path) / "train", key), (Path(path) / "test", key)]
    _option(
        train_path is not None and test_path is not None,
        "path",
        "give path (a folder with train/ and test/ folders of LEAF *.json files), "
        "or both train_path and test_path",
    )
    return [
        (Path(str(train_path)), "data.options.train_path"),
        (Path(str(test_path)), "data.options.test_path"),
    ]


def _leaf_bad(file: Path, key: str, message: str) -> DataError:
    return DataError(
        f"{message}; a LEAF file is a JSON object with 'users' (a list) and 'user_data' "
        "({user: {'x': [...], 'y': [...]}})",
        source=str(file),
        key=key,
    )


def _leaf_load(file: Path, key: str) -> dict[str, Any]:
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _leaf_bad(file, key, f"cannot read JSON ({exc})") from None
    ok = isinstance(doc, dict) and isinstance(doc.get("users"), list)
    if not ok or not isinstance(doc.get("user_data"), dict):
        raise _leaf_bad(file, key, "missing or malformed 'users' / 'user_data'")
    return doc


def _leaf_user(file: Path, key: str, user: Any, entry: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(entry, dict) or "x" not in entry or "y" not in entry:
        raise _leaf_bad(file, key, f"user {user!r} has no 'x' and 'y' in 'user_data'")
    try:
        x, y = np.asarray(entry["x"]), np.asarray(entry["y"])
    except ValueError:
        raise _leaf_bad(file, key, f"user {user!r}: rows of 'x' differ in shape") from None
    if len(x) and x.dtype.kind not in "biuf":
        raise DataError(
            f"user {user!r} has non-numeric x (dtype {x.dtype}); only numeric features are "
            "supported: encode text or characters as numbers first",
            source=str(file),
            key=key,
        )
    if y.ndim != 1 or len(x) != len(y):
        message = f"user {user!r}: 'y' must be a list with one label per row of 'x'"
        raise _leaf_bad(file, key, message)
    if not len(y):
        return x, y  # a user without rows: skipped
    x = x.astype(np.float32).reshape(len(x), -1) if x.ndim == 1 else x.astype(np.float32)
    bad = int(np.size(x) - np.isfinite(x).sum())
    if bad:
        raise DataError(
            f"user {user!r} has {bad} non-finite value(s) (NaN or inf) in 'x'; fix or drop "
            "those rows",
            source=str(file),
            key=key,
        )
    return x, y


def _leaf_read(folder: Path, key: str) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """(user, x, y) of every user with data in the *.json files of ``folder`` (sorted by name)."""
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        raise DataMissingError(
            f"no *.json files in {folder}{relative_note(folder)}; LEAF data needs train/ and "
            "test/ folders of JSON files",
            key=key,
        )
    users, xs, ys = [], [], []
    for file in files:
        doc = _leaf_load(file, key)
        for user in doc["users"]:
            x, y = _leaf_user(file, key, user, doc["user_data"].get(user))
            if len(y):
                users.append(str(user))
                xs.append(x)
                ys.append(y)
    if not ys:
        raise DataError(
            f"no user has rows in the *.json files of {folder}; give each split some rows",
            key=key,
        )
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
    train, test = _leaf_dirs(path, train_path, test_path)
    users, xs, ys = _leaf_read(*train)
    _, test_xs, test_ys = _leaf_read(*test)
    shapes = {x.shape[1:] for x in xs + test_xs}
    if len(shapes) > 1:
        raise DataError(f"users' x rows differ in shape: {sorted(shapes)}", key=train[1])
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
