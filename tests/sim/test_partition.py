"""Properties of the partitioners: disjoint, covering, minimum size, deterministic."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedhpo.config import PartitionConfig
from fedhpo.errors import DataError
from fedhpo.sim.partition import Partition, dirichlet, iid, natural, partition, shards

FAST = settings(max_examples=60, deadline=None)

seeds = st.integers(0, 2**32 - 1)
num_clients = st.integers(1, 25)
min_sizes = st.integers(1, 12)


@st.composite
def label_arrays(draw: st.DrawFn) -> np.ndarray:
    n = draw(st.integers(0, 300))
    k = draw(st.integers(1, 10))
    seed = draw(seeds)
    return np.random.default_rng(seed).integers(0, k, n)


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def check_shape(p: Partition) -> None:
    assert p.indices.dtype == np.int64 and p.offsets.dtype == np.int64
    assert p.offsets[0] == 0 and p.offsets[-1] == len(p.indices)
    assert np.all(np.diff(p.offsets) >= 0)


def check_disjoint_covering(p: Partition, n: int, min_size: int) -> None:
    check_shape(p)
    assert np.array_equal(np.sort(p.indices), np.arange(n))  # disjoint and covering
    assert p.sizes.min() >= min_size


def same(a: Partition, b: Partition) -> bool:
    return np.array_equal(a.indices, b.indices) and np.array_equal(a.offsets, b.offsets)


@FAST
@given(n=st.integers(0, 500), c=num_clients, min_size=min_sizes, seed=seeds)
def test_iid_is_a_balanced_partition_or_a_clean_error(n, c, min_size, seed):
    try:
        p = iid(n, c, rng(seed), min_size)
    except DataError as exc:
        assert n // c < min_size
        assert "min_size" in str(exc) and "num_clients" in str(exc)
        return
    check_disjoint_covering(p, n, min_size)
    assert p.num_clients == c and p.sizes.max() - p.sizes.min() <= 1
    assert same(p, iid(n, c, rng(seed), min_size))


@FAST
@given(
    labels=label_arrays(),
    c=num_clients,
    alpha=st.floats(0.05, 100.0),
    min_size=min_sizes,
    seed=seeds,
)
def test_dirichlet_is_a_partition_or_a_clean_error(labels, c, alpha, min_size, seed):
    try:
        p = dirichlet(labels, c, alpha, rng(seed), min_size, max_tries=5)
    except DataError as exc:
        assert "alpha" in str(exc) and "min_size" in str(exc)
        return
    check_disjoint_covering(p, len(labels), min_size)
    assert p.num_clients == c
    assert same(p, dirichlet(labels, c, alpha, rng(seed), min_size, max_tries=5))


@FAST
@given(labels=label_arrays(), c=num_clients, spc=st.integers(1, 4), min_size=min_sizes, seed=seeds)
def test_shards_is_a_partition_or_a_clean_error(labels, c, spc, min_size, seed):
    try:
        p = shards(labels, c, spc, rng(seed), min_size)
    except DataError as exc:
        assert "min_size" in str(exc)
        return
    check_disjoint_covering(p, len(labels), min_size)
    assert p.num_clients == c
    assert same(p, shards(labels, c, spc, rng(seed), min_size))


@FAST
@given(
    seed=seeds,
    n=st.integers(0, 300),
    ids=st.integers(1, 30),
    min_size=min_sizes,
    grouped=st.booleans(),
)
@pytest.mark.filterwarnings("ignore:the natural partition dropped")
def test_natural_keeps_whole_clients_in_id_order(seed, n, ids, min_size, grouped):
    client_ids = rng(seed).integers(0, ids, n) * 7 - 50  # any int ids, not 0..K-1
    if grouped:
        client_ids = np.sort(client_ids)
    values, counts = np.unique(client_ids, return_counts=True)
    kept = values[counts >= min_size]
    try:
        p = natural(client_ids, min_size)
    except DataError as exc:
        assert len(kept) == 0 and "min_size" in str(exc)
        return
    check_shape(p)
    assert len(np.unique(p.indices)) == len(p.indices)
    owners = [np.unique(client_ids[p.client(c)]) for c in range(p.num_clients)]
    assert all(len(o) == 1 for o in owners)
    assert np.array_equal(np.concatenate(owners), kept)  # sorted id order
    assert np.array_equal(np.sort(p.indices), np.flatnonzero(np.isin(client_ids, kept)))
    assert p.sizes.min() >= min_size


def test_natural_says_which_clients_min_size_dropped():
    # a site of 9 rows vanished under the default min_size of 10 with nothing said
    ids = np.repeat([5, 7, 9], [12, 9, 3])
    with pytest.warns(UserWarning, match="dropped 2 of 3 clients") as got:
        p = natural(ids, 10)
    assert p.num_clients == 1
    message = str(got[0].message)
    assert "(12 training rows)" in message and "data.partition.min_size=10" in message
    assert "lower data.partition.min_size" in message


def test_natural_keeping_every_client_says_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert natural(np.repeat([1, 2], [10, 11]), 10).num_clients == 2


def label_tv(labels: np.ndarray, p: Partition, k: int) -> float:
    """Mean total-variation distance between client label histograms and the global one."""
    glob = np.bincount(labels, minlength=k) / len(labels)
    tv = [
        0.5 * np.abs(np.bincount(labels[p.client(c)], minlength=k) / p.sizes[c] - glob).sum()
        for c in range(p.num_clients)
    ]
    return float(np.mean(tv))


def test_dirichlet_alpha_controls_label_skew():
    labels = np.repeat(np.arange(10), 1000)
    iid_like = dirichlet(labels, 10, 1e4, rng(0), 10)
    skewed = dirichlet(labels, 10, 0.05, rng(0), 10)
    assert label_tv(labels, iid_like, 10) < 0.02
    assert label_tv(labels, skewed, 10) > 0.6


def test_shards_give_each_client_few_labels():
    labels = np.repeat(np.arange(10), 100)
    p = shards(labels, 10, 2, rng(0), 10)
    assert all(len(np.unique(labels[p.client(c)])) <= 2 for c in range(10))
    assert np.all(p.sizes == 100)


def test_dirichlet_gives_up_with_advice():
    labels = np.repeat(np.arange(2), 20)
    with pytest.raises(DataError, match="larger data.partition.alpha"):
        dirichlet(labels, 10, 0.01, rng(0), 4, max_tries=3)


def test_dispatcher_defaults_and_errors():
    labels = np.repeat(np.arange(4), 25)
    ids = np.repeat(np.arange(5), 20)
    assert partition(labels, PartitionConfig(), ids, rng(0)).num_clients == 5  # natural
    assert partition(100, PartitionConfig(num_clients=4), None, rng(0)).num_clients == 4  # iid
    cfg = PartitionConfig(method="dirichlet", num_clients=4, alpha=1.0, min_size=1)
    assert partition(labels, cfg, ids, rng(0)).num_clients == 4
    with pytest.raises(DataError, match="natural.*no"):
        partition(labels, PartitionConfig(method="natural"), None, rng(0))
    with pytest.raises(DataError, match="needs labels"):
        partition(100, PartitionConfig(method="shards"), None, rng(0))
