"""Dataset registry, option checking and the built-in builders (on fixtures written here)."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedhpo.config import DataConfig, PartitionConfig
from fedhpo.errors import ConfigError, DataError, FedhpoError
from fedhpo.sim.data import ArrayData, federate, stream_rng
from fedhpo.sim.datasets import (
    REQUIRED,
    _generated,
    _registry,
    build_dataset,
    dataset_options,
    list_datasets,
    read_idx,
    register_dataset,
)

SHARED = Path(
    os.environ.get("FEDHPO_SHARED_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data"
)


def build(name: str, partition: dict | None = None, seed: int = 0, **options):
    part = PartitionConfig(**(partition or {}))
    return build_dataset(DataConfig(name=name, options=options, partition=part, seed=seed))


# ------------------------------------------------------------------------------ registry


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))


def test_builtins_are_registered():
    assert {"synthetic", "workload_w", "idx", "csv", "leaf"} <= set(list_datasets())
    assert dataset_options("synthetic")["alpha"] == 1.0
    assert dataset_options("idx") == {"path": REQUIRED, "normalize": True}


def test_register_a_builder_and_build_it(registry):
    @register_dataset("toy")
    def toy(*, seed: int, n: int = 40, scale: float = 1.0) -> ArrayData:
        rng = stream_rng(seed, "toy")
        x = (scale * rng.standard_normal((n, 3))).astype(np.float32)
        return ArrayData(x, np.arange(n) % 2, None, x[:4], np.zeros(4, np.int64), 2)

    ds = build("toy", {"num_clients": 2, "min_size": 1}, n=20, scale=2)  # int for a float: ok
    assert ds.num_clients == 2 and len(ds.x) == 20 and ds.name == "toy"
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("toy")(toy)


def test_register_rejects_a_bad_signature(registry):
    def positional(seed, n=3):
        raise AssertionError

    with pytest.raises(TypeError, match="keyword-only"):
        register_dataset("bad")(positional)


def test_unknown_dataset_lists_the_registered_ones():
    with pytest.raises(ConfigError, match="registered: csv, idx") as exc:
        build("nope")
    assert exc.value.key == "data.name"


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="valid: alpha, beta, iid") as exc:
        build("synthetic", alphaa=1.0)
    assert exc.value.key == "data.options.alphaa"


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"alpha": "big"}, "data.options.alpha"),
        ({"iid": 1}, "data.options.iid"),
        ({"num_clients": 2.5}, "data.options.num_clients"),
        ({"num_clients": 0}, "data.options.num_clients"),
    ],
)
def test_bad_option_values_are_config_errors(options, key):
    with pytest.raises(ConfigError) as exc:
        build("synthetic", **options)
    assert exc.value.key == key


@pytest.mark.parametrize(
    ("name", "options", "key", "message"),
    [
        # `beta: .nan` said "`data.options.alpha`: alpha and beta must be >= 0"
        ("synthetic", {"beta": float("nan")}, "beta", "must be a finite number >= 0, got nan"),
        ("synthetic", {"alpha": float("inf")}, "alpha", "must be a finite number >= 0, got inf"),
        ("synthetic", {"beta": -1}, "beta", "must be a finite number >= 0, got -1.0"),
        ("synthetic", {"alpha": float("nan"), "beta": -1}, "alpha", "must be a finite number >= 0, got nan"),
        # 1e29 clients was "ValueError: Maximum allowed dimension exceeded"
        ("synthetic", {"num_clients": 10**29}, "num_clients", f"must be at most 1000000, got {10**29}"),
        ("workload_w", {"num_clients": 10**29}, "num_clients", f"must be at most 1000000, got {10**29}"),
    ],
)  # fmt: skip
def test_generated_options_name_their_own_key(name, options, key, message):
    with pytest.raises(ConfigError) as exc:
        build(name, **options)
    assert exc.value.key == f"data.options.{key}" and exc.value.message == message


@pytest.mark.parametrize(
    ("name", "options", "key", "fragment"),
    [
        ("synthetic", {"num_clients": 1_000_000}, "data.options",
         "1000000 clients of 454,757,204 rows in all"),
        ("synthetic", {"dim": 10**29}, "data.options", "30 clients of 18,089 rows in all, dim "),
        ("synthetic", {"num_clients": 1, "dim": 10**5, "num_classes": 10**5}, "data.options",
         "1.0e+10 values"),
        ("workload_w", {"num_clients": 1_000_000}, "data.options.num_clients",
         "1000000 clients (60,080,333 rows of 60 features)"),
    ],
)  # fmt: skip
def test_a_generated_dataset_past_a_billion_values_is_refused_before_it_is_drawn(
    name, options, key, fragment
):
    # with 100x the clients or features of the defaults or more, a build ran out of memory
    # (or the system killed it) before it could say so
    with pytest.raises(ConfigError) as exc:
        build(name, **options)
    assert exc.value.key == key and fragment in exc.value.message
    assert "more than 1e+09 values (4 GB as float32); lower " in exc.value.message


@pytest.mark.parametrize(
    ("partition", "key", "fragment"),
    [
        ({"method": "dirichlet", "num_clients": 5000}, "data.partition.num_clients",
         "a dirichlet split of 15,346 rows cannot give 5000 clients min_size=10 rows each"),
        ({"method": "shards", "num_clients": 10, "min_size": 1, "shards_per_client": 10**6},
         "data.partition.shards_per_client", "10000000 shards of 15,346 rows: some would be"),
        ({"method": "dirichlet", "num_clients": 2**31 - 1}, "data.partition.num_clients",
         "cannot give 2147483647 clients"),
    ],
)  # fmt: skip
def test_a_split_into_more_clients_than_rows_is_refused_before_it_is_drawn(
    partition, key, fragment
):
    # 2**31 - 1 clients of a Dirichlet split allocated 17 GB per class before it failed
    with pytest.raises(DataError) as exc:
        build("synthetic", partition, num_clients=25)
    assert exc.value.key == key and fragment in exc.value.message


def test_missing_required_option():
    with pytest.raises(ConfigError, match="needs this option") as exc:
        build("idx")
    assert exc.value.key == "data.options.path"


# ---------------------------------------------------------------------- FedProx synthetic


def test_synthetic_follows_the_fedprox_generator():
    ds = build("synthetic", {"min_size": 1})
    assert ds.num_clients == 30 and ds.feature_shape == (60,) and ds.num_classes == 10
    device_rows = ds.train_sizes + ds.val_sizes
    assert device_rows.min() >= 45  # int(0.9 * n) with n >= 50
    assert len(ds.test_x) >= 30 * 5 and int(ds.y.max()) <= 9 and int(ds.y.min()) >= 0
    big = int(np.argmax(device_rows))
    rows = ds.x[int(ds.offsets[big]) : int(ds.offsets[big + 1])].numpy()
    sigma = np.arange(1, 61) ** -1.2
    assert np.allclose(rows.var(axis=0)[:10], sigma[:10], rtol=0.35)  # x ~ N(v_k, Sigma)


def label_skew(ds) -> float:
    glob = np.bincount(ds.y.numpy(), minlength=ds.num_classes) / len(ds.y)
    tv = []
    for c in range(ds.num_clients):
        y = ds.y[int(ds.offsets[c]) : int(ds.offsets[c + 1])].numpy()
        tv.append(0.5 * np.abs(np.bincount(y, minlength=ds.num_classes) / len(y) - glob).sum())
    return float(np.mean(tv))


def test_synthetic_iid_variant_shares_one_model():
    non_iid, iid = (
        build("synthetic", {"min_size": 1}),
        build("synthetic", {"min_size": 1}, iid=True),
    )
    assert not torch.equal(non_iid.x[:100], iid.x[:100])
    assert abs(float(iid.x.mean())) < 0.05  # x ~ N(0, Sigma)
    assert label_skew(iid) < 0.2 < label_skew(non_iid)


def test_synthetic_is_deterministic():
    a, b, c = build("synthetic"), build("synthetic"), build("synthetic", seed=1)
    assert torch.equal(a.x, b.x) and torch.equal(a.test_y, b.test_y)
    assert len(a.x) != len(c.x) or not torch.equal(a.x, c.x)


# ------------------------------------------------------------------ benchmark workload W


@pytest.fixture(scope="module")
def workload():
    return build("workload_w")


def test_workload_w_statistics(workload):
    ds = workload
    sizes = np.diff(ds.offsets)
    assert ds.num_clients == 1000 and ds.feature_shape == (60,) and ds.num_classes == 10
    assert 58 <= sizes.mean() <= 63 and sizes.min() == 10 and 35 <= np.median(sizes) <= 50
    assert 300 <= sizes.max() <= 1500 and 58_000 <= sizes.sum() <= 63_000
    assert len(ds.test_x) == 10_000
    test_freq = np.bincount(ds.test_y.numpy(), minlength=10) / 10_000
    assert test_freq.min() > 0.07 and test_freq.max() < 0.13  # about balanced
    assert label_skew(ds) > 0.4  # Dirichlet(0.5) class mixes
    assert abs(float(ds.x.mean())) < 0.02 and abs(float(ds.x.std()) - 1) < 0.02


def test_workload_w_label_noise_flips_a_few_percent():
    teacher = _generated._w_teacher(stream_rng(0, "workload_w/teacher"))
    x = np.random.default_rng(1).standard_normal((20_000, 60), dtype=np.float32)
    flipped = np.mean(teacher.logits(x).argmax(1) != teacher.label(x, np.random.default_rng(2)))
    assert 0.03 < flipped < 0.08


def test_workload_w_is_presorted_deterministic_and_copy_free(workload):
    data = _generated.workload_w(seed=0, num_clients=1000)
    assert data.presorted and data.x.dtype == np.float32
    ds = federate(data, DataConfig(name="workload_w"), "workload_w")
    assert np.shares_memory(ds.x.numpy(), data.x)
    assert torch.equal(ds.x, workload.x) and torch.equal(ds.test_y, workload.test_y)
    other = build("workload_w", seed=1, num_clients=50)
    assert not torch.equal(other.x[:100], workload.x[:100])


# -------------------------------------------------------------------------- IDX (MNIST)


def write_idx(path: Path, array: np.ndarray, code: int, zipped: bool) -> None:
    dtype = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[code]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    payload = header + array.astype(dtype).tobytes()
    if zipped:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def write_mnist(folder: Path, zipped: bool, n: int = 12, n_test: int = 5) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", n), ("t10k", n_test)):
        images = np.arange(count, dtype=np.uint8)[:, None, None] * np.ones((1, 4, 3), np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images * 10, 0x08, zipped)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(count) % 3, 0x08, zipped)


@pytest.mark.parametrize("zipped", [True, False])
def test_idx_round_trip(tmp_path, zipped):
    write_mnist(tmp_path, zipped)
    ds = build("idx", {"num_clients": 3, "min_size": 1}, path=str(tmp_path))
    assert ds.feature_shape == (1, 4, 3) and ds.num_classes == 3 and len(ds.test_x) == 5
    first_pixel = ds.x[:, 0, 0, 0].numpy()
    assert np.allclose(np.sort(first_pixel), np.arange(12) * 10 / 255)
    assert torch.equal(ds.y, (torch.round(ds.x[:, 0, 0, 0] * 255 / 10).long()) % 3)
    raw = build("idx", {"num_clients": 3, "min_size": 1}, path=str(tmp_path), normalize=False)
    assert float(raw.x.max()) == 110.0


@pytest.mark.parametrize(("code", "values"), [(0x0C, [-3, 7, 1 << 20]), (0x0D, [0.5, -2.25])])
def test_read_idx_other_types(tmp_path, code, values):
    write_idx(tmp_path / "a", np.array(values), code, zipped=False)
    assert np.array_equal(read_idx(tmp_path / "a"), np.array(values))


def test_idx_missing_file_names_it(tmp_path):
    write_mnist(tmp_path, zipped=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as exc:
        build("idx", path=str(tmp_path))
    message = str(exc.value)
    assert str(tmp_path / "t10k-labels-idx1-ubyte") in message
    assert "train-images-idx3-ubyte" in message and exc.value.key == "data.options.path"


def test_idx_path_must_be_a_folder(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        build("idx", path=str(tmp_path / "nowhere"))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x01\x02\x08\x01\x00\x00\x00\x01\x05", "magic"),
        (b"", "magic"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x09\x05", "truncated"),
    ],
)
def test_idx_bad_files(tmp_path, payload, message):
    write_mnist(tmp_path, zipped=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(payload)
    with pytest.raises(DataError, match=message) as exc:
        build("idx", path=str(tmp_path))
    assert exc.value.source == str(tmp_path / "train-labels-idx1-ubyte")


def test_idx_corrupt_gzip(tmp_path):
    write_mnist(tmp_path, zipped=True)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read"):
        build("idx", path=str(tmp_path))


# ------------------------------------------------------------------------- CSV / Parquet

TRAIN_CSV = """\
size,color,user,weight,target
1.0,red,u1,10,yes
2.0,green,u1,?,no
3.0,blue,u2,30,yes
4.0,red,u2,40,no
5.0,,u3,50,yes
6.0,green,u3,60,no
7.0,red,u3,70, yes
8.0,blue,u1,80,no
"""
TEST_CSV = """\
size,color,user,weight,target
9.0,purple,u4,90,yes.
10.0,red,u4,?,no.
11.0,green,u5,110,no.
"""


@pytest.fixture
def tables(tmp_path):
    (tmp_path / "train.csv").write_text(TRAIN_CSV)
    (tmp_path / "test.csv").write_text(TEST_CSV)
    return tmp_path


def test_csv_with_test_file_and_client_column(tables):
    with pytest.warns(UserWarning, match="dropped") as got:
        ds = build(
            "csv",
            {"min_size": 1},
            path=str(tables / "train.csv"),
            label="target",
            client_column="user",
            test_path=str(tables / "test.csv"),
        )
    assert "train.csv: dropped 2 of 8 rows" in str(got[0].message)
    assert "test.csv: dropped 1 of 3 rows" in str(got[1].message)
    assert ds.num_clients == 3  # u1, u2, u3 (rows with '?' or empty dropped: 6 train rows left)
    assert ds.dropped_rows == 3
    assert len(ds.x) == 6 and len(ds.test_x) == 2 and ds.num_classes == 2
    assert ds.feature_shape == (2 + 4,)  # size, weight + one-hot of blue, green, purple, red
    assert torch.allclose(ds.x[:, 0].mean(), torch.tensor(0.0), atol=1e-6)  # z-scored on train
    assert sorted(ds.test_y.tolist()) == [0, 1]  # 'yes.' / 'no.' stripped to yes / no
    onehot = ds.x[:, 1:5]  # columns keep the file's order: size, color (one-hot), weight
    assert torch.all(onehot.sum(dim=1) == 1) and torch.all(ds.test_x[:, 1:5].sum(dim=1) == 1)


@pytest.mark.filterwarnings("ignore:.*dropped 2 of 8 rows")
def test_csv_random_test_split_and_options(tables):
    path = str(tables / "train.csv")
    ds = build("csv", {"num_clients": 2, "min_size": 1}, path=path, label=-1, test_fraction=0.5)
    assert len(ds.x) + len(ds.test_x) == 6 and len(ds.test_x) == 3
    assert ds.feature_shape == (2 + 3 + 3,)  # user is a feature now (one-hot)
    raw = build("csv", {"num_clients": 2, "min_size": 1}, path=path, standardize=False)
    assert sorted(torch.cat([raw.x[:, 0], raw.test_x[:, 0]]).tolist()) == [1, 3, 4, 6, 7, 8]
    again = build("csv", {"num_clients": 2, "min_size": 1}, path=path, test_fraction=0.5)
    assert torch.equal(ds.x, again.x)


def test_csv_without_header_gzipped(tmp_path):
    rows = "\n".join(f"{i},{i % 4},{i % 2}" for i in range(40))
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(rows.encode()))
    ds = build(
        "csv", {"num_clients": 4, "min_size": 5}, path=str(tmp_path / "t.csv.gz"), header=False
    )
    assert ds.feature_shape == (2,) and ds.num_classes == 2 and len(ds.x) + len(ds.test_x) == 40
    with pytest.raises(ConfigError, match="no names") as exc:
        build("csv", path=str(tmp_path / "t.csv.gz"), header=False, label="target")
    assert exc.value.key == "data.options.label"


@pytest.mark.filterwarnings("ignore:.*dropped 2 of 8 rows")
def test_parquet_matches_csv(tables):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    pd.read_csv(tables / "train.csv").to_parquet(tables / "train.parquet")
    common = {"label": "target", "client_column": "user", "test_fraction": 0.3}
    from_csv = build("csv", {"min_size": 1}, path=str(tables / "train.csv"), **common)
    from_pq = build("csv", {"min_size": 1}, path=str(tables / "train.parquet"), **common)
    assert torch.equal(from_csv.x, from_pq.x) and torch.equal(from_csv.y, from_pq.y)


def test_parquet_without_pyarrow_says_how_to_fix(tables, monkeypatch):
    (tables / "t.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(DataError, match="needs pyarrow.*pip install"):
        build("csv", path=str(tables / "t.parquet"))


@pytest.mark.parametrize(
    ("options", "error", "key"),
    [
        ({"path": "missing.csv"}, DataError, "data.options.path"),
        ({"label": "nope"}, DataError, "data.options.label"),
        ({"label": 9}, DataError, "data.options.label"),
        ({"client_column": "target", "label": "target"}, ConfigError, "data.options.client_column"),
        ({"test_fraction": 1.0}, ConfigError, "data.options.test_fraction"),
        ({"test_path": "missing.csv"}, DataError, "data.options.test_path"),
        # said "`data.options.skiprows`: skiprows must be >= 0"
        ({"test_skiprows": -1}, ConfigError, "data.options.test_skiprows"),
        # pandas made a set of every line number to skip: the system killed the process
        ({"skiprows": 10**29}, ConfigError, "data.options.skiprows"),
        ({"test_skiprows": 10**7}, ConfigError, "data.options.test_skiprows"),
    ],
)
def test_csv_errors(tables, options, error, key):
    options = {"path": str(tables / "train.csv"), **options}
    with pytest.raises(error) as exc:
        build("csv", **options)
    assert exc.value.key == key


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(alphabet='ab,?.\n 1-"', max_size=80), header=st.booleans())
@pytest.mark.filterwarnings("ignore:.*rows with a missing value")
def test_csv_any_text_gives_a_dataset_or_a_clean_error(tmp_path, text, header):
    (tmp_path / "any.csv").write_text(text)
    with contextlib.suppress(FedhpoError):
        build(
            "csv", {"num_clients": 1, "min_size": 1}, path=str(tmp_path / "any.csv"), header=header
        )


# ------------------------------------------------------------------------------ LEAF JSON


def leaf_file(users: dict[str, tuple[list, list]]) -> dict:
    return {
        "users": list(users),
        "num_samples": [len(y) for _, y in users.values()],
        "user_data": {u: {"x": x, "y": y} for u, (x, y) in users.items()},
    }


@pytest.fixture
def leaf_dir(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    train_a = {"f_0": ([[0, 1], [0, 2], [0, 3]], [0, 1, 1]), "f_1": ([[1, 1]] * 4, [2, 2, 2, 0])}
    train_b = {"f_2": ([[2.5, 0]] * 2, [1.0, 0.0])}
    test = {"f_0": ([[0, 9]], [1]), "f_2": ([[2, 9], [2, 8]], [3, 0])}
    (tmp_path / "train" / "a.json").write_text(json.dumps(leaf_file(train_a)))
    (tmp_path / "train" / "b.json").write_text(json.dumps(leaf_file(train_b)))
    (tmp_path / "test" / "all.json").write_text(json.dumps(leaf_file(test)))
    return tmp_path


def test_leaf_users_are_clients(leaf_dir):
    ds = build("leaf", {"min_size": 1}, path=str(leaf_dir))
    assert ds.num_clients == 3 and ds.feature_shape == (2,) and ds.num_classes == 4
    assert np.array_equal(np.diff(ds.offsets), [3, 4, 2]) and len(ds.test_x) == 3
    for c, first in enumerate([0.0, 1.0, 2.5]):
        lo, hi = int(ds.offsets[c]), int(ds.offsets[c + 1])
        assert torch.all(ds.x[lo:hi, 0] == first)
    same = build(
        "leaf",
        {"min_size": 1},
        train_path=str(leaf_dir / "train"),
        test_path=str(leaf_dir / "test"),
    )
    assert torch.equal(ds.x, same.x)


def test_leaf_text_features_are_rejected(leaf_dir):
    text = {"u": (["hello world", "foo"], ["a", "b"])}
    (leaf_dir / "train" / "c.json").write_text(json.dumps(leaf_file(text)))
    with pytest.raises(DataError, match="only numeric features are supported"):
        build("leaf", path=str(leaf_dir))


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"users": ["u"]}),
        json.dumps({"users": ["u"], "user_data": {}}),
        json.dumps({"users": ["u"], "user_data": {"u": {"x": [[1], [2]], "y": [1]}}}),
        json.dumps({"users": ["u"], "user_data": {"u": {"x": [[1], [2, 3]], "y": [1, 2]}}}),
    ],
)
def test_leaf_malformed_files(leaf_dir, content):
    (leaf_dir / "train" / "bad.json").write_text(content)
    with pytest.raises(DataError) as exc:
        build("leaf", path=str(leaf_dir))
    assert exc.value.source == str(leaf_dir / "train" / "bad.json")


def test_leaf_paths(tmp_path):
    with pytest.raises(DataError, match="no \\*.json"):
        build("leaf", path=str(tmp_path))
    with pytest.raises(ConfigError, match="train_path and test_path") as exc:
        build("leaf")
    assert exc.value.key == "data.options.path"


def test_leaf_errors_name_the_option_that_gave_the_folder(leaf_dir):
    # said `data.options.path` when train_path and test_path were given
    (leaf_dir / "train" / "bad.json").write_text("{not json")
    folders = {"train_path": str(leaf_dir / "train"), "test_path": str(leaf_dir / "test")}
    with pytest.raises(DataError, match="cannot read JSON") as exc:
        build("leaf", **folders)
    assert exc.value.key == "data.options.train_path"
    (leaf_dir / "train" / "bad.json").unlink()
    with pytest.raises(DataError, match="no \\*.json") as exc:
        build("leaf", **{**folders, "test_path": str(leaf_dir / "nowhere")})
    assert exc.value.key == "data.options.test_path"
    (leaf_dir / "test" / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot read JSON") as exc:
        build("leaf", path=str(leaf_dir))
    assert exc.value.key == "data.options.path"


def test_leaf_without_test_rows_is_a_clean_error(leaf_dir):
    # a user with no rows made numpy fail ("cannot reshape array of size 0"), a traceback
    (leaf_dir / "test" / "all.json").write_text(json.dumps(leaf_file({"f_0": ([], [])})))
    with pytest.raises(DataError, match="no user has rows") as exc:
        build("leaf", train_path=str(leaf_dir / "train"), test_path=str(leaf_dir / "test"))
    assert exc.value.key == "data.options.test_path"


def test_leaf_non_finite_features_name_the_file_and_user(leaf_dir):
    bad = {"f_9": ([[0, float("nan")], [0, 1]], [0, 1])}
    (leaf_dir / "train" / "c.json").write_text(json.dumps(leaf_file(bad)))
    with pytest.raises(DataError, match="user 'f_9' has 1 non-finite value") as exc:
        build("leaf", {"min_size": 1}, path=str(leaf_dir))
    assert exc.value.source == str(leaf_dir / "train" / "c.json")


# -------------------------------------------------------------- real data (../shared/data)


def shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found (set FEDHPO_SHARED_DATA to the shared data folder)")
    return path


@pytest.mark.shared_data
def test_fashion_mnist_dirichlet():
    part = {"method": "dirichlet", "num_clients": 100, "alpha": 0.5}
    ds = build("idx", part, path=str(shared("fashion_mnist")))
    assert ds.num_clients == 100 and len(ds.x) == 60_000 and len(ds.test_x) == 10_000
    assert ds.feature_shape == (1, 28, 28) and ds.num_classes == 10
    assert float(ds.x.min()) >= 0.0 and float(ds.x.max()) <= 1.0
    assert np.all(np.bincount(ds.test_y.numpy()) == 1000)


@pytest.mark.shared_data
def test_sklearn_digits_csv():
    path = shared("sklearn_digits", "digits.csv.gz")
    ds = build("csv", {"num_clients": 10}, path=str(path), header=False, label=-1)
    assert len(ds.x) + len(ds.test_x) == 1797 and len(ds.test_x) == 359
    assert ds.feature_shape == (64,) and ds.num_classes == 10


@pytest.mark.shared_data
def test_uci_adult_with_its_test_file():
    folder = shared("uci_adult")
    with pytest.warns(UserWarning, match="dropped") as got:
        ds = build(
            "csv",
            {"num_clients": 10},
            path=str(folder / "adult.data"),
            test_path=str(folder / "adult.test"),
            header=False,
            test_skiprows=1,
        )
    assert len(ds.x) == 30_162 and len(ds.test_x) == 15_060  # rows without '?'
    assert ds.dropped_rows == 2399 + 1221
    assert [str(w.message).split(": ")[1][:23] for w in got] == [
        "dropped 2399 of 32561 r",
        "dropped 1221 of 16281 r",
    ]
    assert ds.num_classes == 2 and set(ds.test_y.tolist()) == {0, 1}
    assert 0.22 < float(ds.test_y.float().mean()) < 0.27  # share of '>50K'


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=st.binary(max_size=40), zipped=st.booleans())
def test_read_idx_any_bytes_gives_an_array_or_a_clean_error(tmp_path, payload, zipped):
    path = tmp_path / ("f.gz" if zipped else "f")
    path.write_bytes(gzip.compress(payload) if zipped else payload)
    with contextlib.suppress(DataError):
        assert isinstance(read_idx(path), np.ndarray)


@pytest.mark.parametrize(
    ("name", "options"),
    [("idx", {"path": "data/fmnist"}), ("csv", {"path": "data/t.csv"}),
     ("leaf", {"path": "data/femnist"})],
)  # fmt: skip
def test_a_missing_relative_path_names_the_working_directory(tmp_path, monkeypatch, name,
                                                             options) -> None:  # fmt: skip
    # `fedhpo run /elsewhere/configs/fmnist_cnn.yaml` from another folder said only
    # "../shared/data/fashion_mnist is not a folder"; relative paths are read from the
    # working directory, which the message now names
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as caught:
        build(name, **options)
    assert f"relative to the working directory {tmp_path}" in str(caught.value)
    with pytest.raises(DataError) as caught:
        build(name, path=str(tmp_path / options["path"]))
    assert "working directory" not in str(caught.value)  # an absolute path says nothing more
