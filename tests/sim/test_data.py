"""FederatedDataset invariants and federate(): grouping, splits, views, fraction, determinism."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from fedhpo.config import DataConfig, PartitionConfig
from fedhpo.errors import ConfigError, DataError
from fedhpo.sim.data import ArrayData, FederatedDataset, federate, stream_rng


def make_data(n: int = 600, clients: int | None = None, presorted: bool = False) -> ArrayData:
    """Rows whose first feature is the row number and second the client id."""
    rng = np.random.default_rng(123)
    y = rng.integers(0, 5, n)
    client = None
    if clients is not None:
        client = np.sort(rng.integers(0, clients, n)) if presorted else rng.integers(0, clients, n)
    x = np.stack([np.arange(n), client if client is not None else np.zeros(n)], axis=1)
    return ArrayData(
        x=x.astype(np.float32),
        y=y.astype(np.int64),
        client=None if client is None else client.astype(np.int64),
        test_x=np.zeros((7, 2), np.float32),
        test_y=np.zeros(7, np.int64),
        num_classes=5,
        presorted=presorted,
    )


def cfg(**kw) -> DataConfig:
    part = kw.pop("partition", {})
    return DataConfig(name="toy", partition=PartitionConfig(**part), **kw)


def row_ids(ds: FederatedDataset, c: int) -> np.ndarray:
    lo, hi = int(ds.offsets[c]), int(ds.offsets[c + 1])
    return ds.x[lo:hi, 0].numpy().astype(np.int64)


def test_rows_grouped_by_client_with_random_splits():
    data = make_data()
    ds = federate(data, cfg(partition={"num_clients": 8}), "toy")
    assert ds.num_clients == 8 and ds.feature_shape == (2,) and ds.name == "toy"
    assert ds.x.dtype == torch.float32 and ds.y.dtype == torch.int64
    assert ds.offsets.dtype == np.int64 and ds.offsets[-1] == len(ds.x) == 600
    assert np.array_equal(np.sort(ds.x[:, 0].numpy()), np.arange(600))  # every row once
    assert torch.equal(ds.y, torch.from_numpy(data.y)[ds.x[:, 0].long()])  # labels follow rows
    sizes = np.diff(ds.offsets)
    assert np.array_equal(ds.val_sizes, np.round(0.1 * sizes))
    assert np.array_equal(ds.train_sizes + ds.val_sizes, sizes)
    assert not all(np.all(np.diff(row_ids(ds, c)) > 0) for c in range(8))  # shuffled


def test_natural_clients_keep_their_rows():
    ds = federate(make_data(clients=6), cfg(partition={"min_size": 1}), "toy")
    assert ds.num_clients == 6
    for c in range(6):
        lo, hi = int(ds.offsets[c]), int(ds.offsets[c + 1])
        assert torch.all(ds.x[lo:hi, 1] == ds.x[lo, 1])
        assert np.any(np.diff(row_ids(ds, c)) < 0)  # shuffled inside the client


def test_presorted_data_is_used_without_a_copy():
    data = make_data(clients=6, presorted=True)
    ds = federate(data, cfg(partition={"min_size": 1}), "toy")
    assert np.shares_memory(ds.x.numpy(), data.x)
    assert np.array_equal(ds.x[:, 0].numpy(), np.arange(600))


def test_presorted_data_with_dropped_clients_is_gathered_in_order():
    data = make_data(clients=6, presorted=True)
    counts = np.bincount(data.client)
    with pytest.warns(UserWarning, match="natural partition dropped"):
        ds = federate(data, cfg(partition={"min_size": int(np.sort(counts)[1])}), "toy")
    assert ds.num_clients < 6
    assert np.all(np.diff(ds.x[:, 0].numpy()) > 0)  # rows kept in their (already random) order


def test_views_share_storage_and_cover_the_client():
    ds = federate(make_data(), cfg(partition={"num_clients": 5}), "toy")
    x, y = ds.client_train(2)
    vx, vy = ds.client_val(2)
    for t in (x, vx):
        assert t.untyped_storage().data_ptr() == ds.x.untyped_storage().data_ptr()
    assert len(x) == ds.train_sizes[2] and len(vx) == ds.val_sizes[2]
    assert torch.equal(torch.cat([x, vx]), ds.x[int(ds.offsets[2]) : int(ds.offsets[3])])


def test_val_rows_concatenates_client_validation_rows():
    ds = federate(make_data(), cfg(partition={"num_clients": 5}), "toy")
    x, y = ds.val_rows([3, 0])
    assert torch.equal(x, torch.cat([ds.client_val(3)[0], ds.client_val(0)[0]]))
    assert torch.equal(y, torch.cat([ds.client_val(3)[1], ds.client_val(0)[1]]))
    assert len(ds.val_rows(np.arange(0))[0]) == 0


@pytest.mark.parametrize("fraction", [0.01, 0.3, 0.5, 1.0])
def test_with_fraction_keeps_a_prefix_and_the_validation_rows(fraction):
    ds = federate(make_data(), cfg(partition={"num_clients": 7}), "toy")
    small = ds.with_fraction(fraction)
    expected = np.maximum(1, np.ceil(np.round(fraction * ds.train_sizes, 9))).astype(int)
    assert np.array_equal(small.train_sizes, expected)
    assert small.x is ds.x and np.array_equal(small.val_sizes, ds.val_sizes)
    for c in range(7):
        assert torch.equal(small.client_train(c)[0], ds.client_train(c)[0][: expected[c]])
        assert torch.equal(small.client_val(c)[0], ds.client_val(c)[0])
    with pytest.raises(ConfigError, match="data.fraction"):
        ds.with_fraction(0.0)


def test_cfg_fraction_and_val_fraction_are_applied():
    ds = federate(make_data(), cfg(partition={"num_clients": 6}, val_fraction=0.25), "toy")
    part = federate(
        make_data(), cfg(partition={"num_clients": 6}, val_fraction=0.25, fraction=0.5), "toy"
    )
    assert np.array_equal(part.val_sizes, ds.val_sizes)
    assert np.array_equal(part.train_sizes, np.ceil(0.5 * ds.train_sizes))


def test_every_client_keeps_a_training_row():
    data = make_data(n=40, clients=40)
    ds = federate(data, cfg(partition={"min_size": 1}, val_fraction=0.9), "toy")
    assert ds.train_sizes.min() >= 1


def test_a_val_fraction_that_gives_no_validation_rows_is_said():
    # ~15 rows a client at val_fraction 0.01: round(0.15) = 0 validation rows everywhere, and
    # `fedhpo run` printed "val acc nan" with nothing said
    data = make_data(n=600, clients=40)
    largest = int(np.bincount(data.client).max())
    with pytest.warns(UserWarning, match="data.val_fraction 0.01 gives no validation rows") as got:
        ds = federate(data, cfg(partition={"min_size": 1}, val_fraction=0.01), "toy")
    assert ds.val_sizes.sum() == 0
    message = str(got[0].message)
    assert f"the largest of the 40 clients has {largest} rows" in message
    assert "raise data.val_fraction" in message and "set it to 0" in message


def test_no_validation_rows_asked_for_says_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = federate(make_data(clients=6), cfg(partition={"min_size": 1}, val_fraction=0), "t")
    assert ds.val_sizes.sum() == 0


def test_same_seed_same_tensors_other_seed_other_tensors():
    a = federate(make_data(), cfg(partition={"method": "dirichlet", "num_clients": 6}), "toy")
    b = federate(make_data(), cfg(partition={"method": "dirichlet", "num_clients": 6}), "toy")
    c = federate(
        make_data(), cfg(partition={"method": "dirichlet", "num_clients": 6}, seed=1), "toy"
    )
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert np.array_equal(a.offsets, b.offsets)
    assert not torch.equal(a.x, c.x)


def test_natural_without_client_ids_is_a_data_error():
    with pytest.raises(DataError, match="natural"):
        federate(make_data(), cfg(partition={"method": "natural"}), "toy")


def test_many_clients_cost_only_arrays():
    n = 200_000
    client = np.repeat(np.arange(100_000, dtype=np.int64), 2)
    data = ArrayData(
        np.zeros((n, 3), np.float32),
        np.zeros(n, np.int64),
        client,
        np.zeros((1, 3), np.float32),
        np.zeros(1, np.int64),
        2,
        presorted=True,
    )
    ds = federate(data, cfg(partition={"min_size": 1}, val_fraction=0.5), "many")
    assert ds.num_clients == 100_000 and ds.val_sizes.sum() == 100_000
    assert len(ds.val_rows(np.arange(100_000))[0]) == 100_000
    assert "clients=100000" in repr(ds)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x": np.zeros((4, 2))}, "x must be float32"),
        ({"y": np.zeros(4, np.int32)}, "y must be int64"),
        ({"y": np.full(4, 9, np.int64)}, "num_classes"),
        ({"test_x": np.zeros((2, 3), np.float32)}, "test set"),
        ({"presorted": True}, "presorted"),
        ({"test_x": np.zeros((0, 2), np.float32), "test_y": np.zeros(0, np.int64)}, "no test rows"),
    ],
)
def test_array_data_checks_its_contract(change, message):
    fields = _fields(rows=4, test_rows=2, features=2, num_classes=3)
    with pytest.raises(DataError, match=message):
        ArrayData(**{**fields, **change})


def _fields(rows: int, test_rows: int, features: int, num_classes: int) -> dict:
    """ArrayData's fields: zero features and labels, no client ids."""
    return {
        "x": np.zeros((rows, features), np.float32),
        "y": np.zeros(rows, np.int64),
        "client": None,
        "test_x": np.zeros((test_rows, features), np.float32),
        "test_y": np.zeros(test_rows, np.int64),
        "num_classes": num_classes,
    }


@pytest.mark.parametrize("field", ["x", "test_x"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_array_data_refuses_non_finite_features(field, bad):
    # a NaN feature made every run "diverge" and tune blame the hyperparameters for it
    fields = _fields(rows=5, test_rows=4, features=3, num_classes=2)
    fields[field][2, 1] = fields[field][3, 0] = bad
    with pytest.raises(DataError, match=f"ArrayData.{field} has 2 non-finite values") as exc:
        ArrayData(**fields)
    assert "(NaN or inf)" in exc.value.message and "first in row 2" in exc.value.message


def test_stream_rng_is_deterministic_and_checks_the_seed():
    a, b = stream_rng(3, "a").random(4), stream_rng(3, "a").random(4)
    assert np.array_equal(a, b) and not np.array_equal(a, stream_rng(3, "b").random(4))
    with pytest.raises(ConfigError, match="data.seed"):
        stream_rng(-1, "a")
