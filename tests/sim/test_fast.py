"""The fast trainer against the reference per-client loop, option by option (uniform ones;
per-client options and budgets are in test_work.py)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from fedhpo.config import ClientConfig, ModelConfig, config_from_dict
from fedhpo.sim import _fast_kernels, _fast_schedule, fast
from fedhpo.sim.cohort import REFERENCE, train_reference
from fedhpo.sim.data import FederatedDataset
from fedhpo.sim.engine import default_trainer, run_simulation
from fedhpo.sim.models import build_model
from fedhpo.sim.sampling import STREAM_CLIENT, derive_seed
from fedhpo.sim.work import Work, WorkResult

# Heavy-tailed client sizes with a 1-row client, an empty one and short last batches.
SIZES = [1, 7, 23, 5, 64, 3, 40, 11, 0, 16, 2, 9]
COHORT = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])


def make_dataset(sizes: list[int], shape: tuple[int, ...] = (6,), classes: int = 4):
    """Client c owns rows offsets[c]:offsets[c+1], all training rows (plus one val row)."""
    g = torch.Generator().manual_seed(0)
    total = sum(sizes) + len(sizes)
    x = torch.randn(total, *shape, generator=g)
    y = torch.randint(0, classes, (total,), generator=g)
    offsets = np.concatenate(([0], np.cumsum(np.array(sizes) + 1))).astype(np.int64)
    return FederatedDataset(
        x=x,
        y=y,
        offsets=offsets,
        n_train=np.array(sizes, dtype=np.int64),
        test_x=x[:10],
        test_y=y[:10],
        num_classes=classes,
        name="tiny",
    )


DATA = make_dataset(SIZES)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is much faster (and steadier on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def params_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in model.named_parameters()}


def assert_same_results(ref: WorkResult, got: WorkResult) -> None:
    assert np.array_equal(got.clients, ref.clients)
    assert np.array_equal(got.num_samples, ref.num_samples)
    assert np.array_equal(got.steps, ref.steps)
    assert np.array_equal(got.finite, ref.finite)
    np.testing.assert_allclose(got.losses, ref.losses, rtol=0, atol=1e-5)
    assert list(got.deltas) == list(ref.deltas)
    for k in ref.deltas:
        assert got.deltas[k].shape == ref.deltas[k].shape
        torch.testing.assert_close(got.deltas[k], ref.deltas[k], rtol=0, atol=1e-5)


def work_of(params, hp: ClientConfig, cohort=COHORT, seed: int = 7, stream: int = 3) -> Work:
    return Work(cohort, params, hp, seed, np.full(len(cohort), stream))


def compare(model: nn.Module, hp: ClientConfig, data=DATA, cohort=COHORT, round_: int = 3):
    params = params_of(model)
    work = work_of(params, hp, cohort, stream=round_)
    ref = train_reference(model, data, work)
    got = fast.train_fast(model, data, work)
    assert_same_results(ref, got)
    assert all(torch.equal(params[k], p) for k, p in model.named_parameters())  # untouched
    return got


MODELS = {
    "logreg": ModelConfig("logreg"),
    "mlp1": ModelConfig("mlp", {"hidden": [8]}),
    "mlp2": ModelConfig("mlp", {"hidden": [8, 5]}),
}
OPTIONS = {
    "plain": ClientConfig(lr=0.1, batch_size=4),
    "momentum": ClientConfig(lr=0.1, batch_size=4, momentum=0.9),
    "weight_decay": ClientConfig(lr=0.1, batch_size=4, weight_decay=0.05),
    "mu": ClientConfig(lr=0.1, batch_size=4, mu=1.0),
    "local_steps": ClientConfig(lr=0.1, batch_size=4, local_steps=7),  # cycles passes
    "local_epochs": ClientConfig(lr=0.1, batch_size=5, local_epochs=3),
    "big_batch": ClientConfig(lr=0.1, batch_size=32),
    "all": ClientConfig(lr=0.05, batch_size=3, momentum=0.5, weight_decay=0.01, mu=0.3),
}


@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.usefixtures("linear_route")
def test_linear_stacks_match_the_reference(name: str, option: str) -> None:
    model = build_model(MODELS[name], (6,), 4, seed=1)
    assert fast.fast_path(model) == "linear"
    compare(model, OPTIONS[option])


@pytest.mark.usefixtures("linear_route")
def test_image_input_is_flattened_and_cohort_order_is_kept() -> None:
    data = make_dataset([5, 12, 1, 8], shape=(2, 3, 3))
    model = build_model(ModelConfig("mlp", {"hidden": [7]}), (2, 3, 3), 4, seed=0)
    compare(model, OPTIONS["all"], data, np.array([3, 0, 2]))


@pytest.mark.usefixtures("linear_route")
def test_bias_free_layers_and_nested_sequentials() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Sequential(nn.Flatten(), nn.Linear(6, 5, bias=False)),
        nn.ReLU(),
        nn.Identity(),
        nn.Linear(5, 4),
    )
    assert fast.fast_path(model) == "linear"
    compare(model, OPTIONS["momentum"])


def test_params_in_another_order_give_deltas_in_that_order() -> None:
    model = build_model(MODELS["mlp1"], (6,), 4, seed=0)
    params = dict(reversed(params_of(model).items()))
    work = work_of(params, OPTIONS["momentum"], seed=1, stream=2)
    got = fast.train_fast(model, DATA, work)
    assert list(got.deltas) == list(params)
    assert_same_results(train_reference(model, DATA, work), got)


@pytest.mark.usefixtures("linear_route")
def test_groups_and_gather_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny budgets: clients split into several groups, rows gathered a few steps at a time."""
    monkeypatch.setattr(fast, "_PARAM_BUDGET", 200)
    monkeypatch.setattr(fast, "_GATHER_BUDGET", 60)
    model = build_model(MODELS["mlp1"], (6,), 4, seed=0)
    compare(model, OPTIONS["all"])


def test_client_seeds_match_derive_seed() -> None:
    clients = np.array([0, 1, 17, 999, 2**31, 2**32 - 1])
    for seed in (0, 5, 2**32 - 1, 2**32, 2**40 + 3, 2**63 - 1):
        for round_ in (1, 30, 2**33):
            expected = [derive_seed(seed, STREAM_CLIENT, round_, int(c)) for c in clients]
            streams = np.full(len(clients), round_)
            assert _fast_schedule._client_seeds(seed, streams, clients) == expected
    streams = np.array([1, 9, 2, 40, 3, 3])  # one stream per client (asynchronous dispatch)
    pairs = zip(streams.tolist(), clients.tolist(), strict=True)
    expected = [derive_seed(5, STREAM_CLIENT, r, c) for r, c in pairs]
    assert _fast_schedule._client_seeds(5, streams, clients) == expected


class Tanh(nn.Module):
    """Not a Sequential, not ReLU: trained through torch.func.vmap."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(6, 5), nn.Linear(5, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a(x)))


def test_other_models_use_vmap() -> None:
    torch.manual_seed(0)
    model = Tanh()
    assert fast.fast_path(model) == "vmap"
    compare(model, OPTIONS["all"])


def test_cnn_falls_back_to_the_reference_with_one_warning() -> None:
    data = make_dataset([3, 9, 1], shape=(1, 6, 6))
    model = build_model(ModelConfig("cnn"), (1, 6, 6), 4, seed=0)
    _fast_kernels._WARNED.discard(type(model))
    with pytest.warns(RuntimeWarning, match="convolutions"):
        assert fast.fast_path(model) == "reference"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compare(model, OPTIONS["momentum"], data, np.array([0, 1, 2]))


def test_buffers_and_random_ops_fall_back() -> None:
    batch_norm = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Linear(5, 4))
    dropout = nn.Sequential(nn.Linear(6, 5), nn.Dropout(0.5), nn.Tanh(), nn.Linear(5, 4))
    _fast_kernels._WARNED.discard(nn.Sequential)
    with pytest.warns(RuntimeWarning, match="buffers"):
        assert fast.fast_path(batch_norm) == "reference"
    assert fast.fast_path(dropout) == "vmap"
    _fast_kernels._WARNED.discard(nn.Sequential)
    with pytest.warns(RuntimeWarning, match="torch.func"):
        result = fast.train_fast(dropout, DATA, work_of(params_of(dropout), OPTIONS["plain"]))
    assert len(result) == len(COHORT) and bool(result.finite.all())
    assert int(result.steps.sum()) > 0
    assert fast.fast_path(dropout) == "reference"


@pytest.mark.usefixtures("linear_route")
def test_divergence_is_reported() -> None:
    model = build_model(MODELS["mlp1"], (6,), 4, seed=0)
    hp = ClientConfig(lr=1e6, batch_size=2, momentum=0.9, local_epochs=20)
    work = work_of(params_of(model), hp, seed=0, stream=1)
    for trainer in (fast.train_fast, train_reference):
        assert not trainer(model, DATA, work).finite.all()


SMALL = {
    "data": {"name": "workload_w", "options": {"num_clients": 40}},
    "model": {"name": "mlp", "options": {"hidden": [16]}},
    "client": {"lr": 0.05, "batch_size": 8, "momentum": 0.5, "mu": 0.1},
    "federation": {"rounds": 3, "clients_per_round": 8, "val_clients": 5},
}


@pytest.mark.usefixtures("linear_route")
def test_run_simulation_same_params_with_both_trainers() -> None:
    config = config_from_dict(SMALL)
    assert default_trainer is fast.FAST
    a = run_simulation(config)
    b = run_simulation(config, trainer=REFERENCE)
    assert a.status == b.status == "completed"
    for k in b.params:
        torch.testing.assert_close(a.params[k], b.params[k], rtol=0, atol=1e-5)
    for ra, rb in zip(a.rounds, b.rounds, strict=True):
        assert ra.train_loss == pytest.approx(rb.train_loss, abs=1e-5)
        assert (ra.clients, ra.samples) == (rb.clients, rb.samples)


def test_diverging_lr_is_a_diverged_run() -> None:
    config = config_from_dict(SMALL).with_values({"client.lr": 1e5, "client.momentum": 0.9})
    result = run_simulation(config)
    assert result.status == "diverged"


def test_a_diverged_client_padding_row_neither_warns_nor_hides_its_loss() -> None:
    """A batch's padding repeats its first row, so when that row's log-probability is -inf
    the padding's is too; it must count as nothing (not -inf * 0 = nan, with a numpy
    warning) and the client's loss be the reference's inf. Seen in stacked grid passes."""
    inf = float("inf")
    real = np.array([[True, True], [True, False]])
    sched = _fast_schedule.Schedule(
        active=[1, 1],
        starts=[0, 1, 2],
        rows=torch.zeros(2, 2, dtype=torch.int64),
        weight=torch.tensor([[0.5, 0.5], [1.0, 0.0]]),
        real=real,
        pair_step=np.array([0, 1]),
        pair_client=np.array([0, 0]),
    )
    logp = torch.tensor([[-0.5, -1.5], [-inf, -inf]])
    run = fast._GroupRun(params=[torch.zeros(1, 3)], logp=logp, steps_run=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        steps, losses, finite = fast._group_stats(run, sched)
    assert steps.tolist() == [1]
    assert losses.tolist() == [inf]
    assert finite.tolist() == [False]


class DropoutMLP(nn.Sequential):
    """A plugin's model with a random op (dropout): trained by the reference loop."""

    def __init__(self, p: float = 0.5) -> None:
        torch.manual_seed(0)
        super().__init__(nn.Flatten(), nn.Linear(6, 16), nn.ReLU(), nn.Dropout(p), nn.Linear(16, 4))


def test_the_reference_trains_dropout_in_train_mode_with_seeded_masks() -> None:
    # the masks came from torch's global unseeded RNG: every run of a plugin model with
    # dropout trained differently, and the run moved the global RNG
    model, plain = DropoutMLP(), DropoutMLP(p=0.0)
    work = work_of(params_of(model), OPTIONS["momentum"])
    state = torch.get_rng_state()
    first = train_reference(model, DATA, work)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(12345)  # the global RNG's state does not matter
    model.eval()  # nor the mode the model was left in: training is in train mode
    again = train_reference(model, DATA, work)
    assert [m.training for m in model] == [False] * len(model) and not model.training
    assert_same_results(first, again)
    assert all(torch.equal(first.deltas[k], again.deltas[k]) for k in first.deltas)
    # dropout was on (a model without it trains otherwise), with each client's own masks
    other = train_reference(plain, DATA, work)
    assert not torch.equal(first.deltas["1.weight"], other.deltas["1.weight"])
    one = Work(COHORT[6:7], params_of(model), OPTIONS["momentum"], 7, np.full(1, 3))
    alone = train_reference(model, DATA, one)
    assert all(torch.equal(alone.deltas[k][0], first.deltas[k][6]) for k in first.deltas)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # falls back to the reference loop
        fast_result = fast.train_fast(model, DATA, work)
    assert all(torch.equal(fast_result.deltas[k], first.deltas[k]) for k in first.deltas)


def test_a_plugin_model_with_dropout_replays_its_run(dropout_model: str) -> None:
    # two `fedhpo run` with the same seed gave different metrics
    config = config_from_dict({**SMALL, "model": {"name": dropout_model}})
    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # falls back to the reference loop
        for global_seed in (1, 2):
            torch.manual_seed(global_seed)
            state = torch.get_rng_state()
            results.append(run_simulation(config))
            assert torch.equal(torch.get_rng_state(), state)
    a, b = results
    assert a.status == b.status == "completed"
    assert [_numbers(r) for r in a.rounds] == [_numbers(r) for r in b.rounds]
    assert (a.test_loss, a.client_accuracies) == (b.test_loss, b.client_accuracies)
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)


def _numbers(record) -> dict[str, object]:
    return {**dataclasses.asdict(record), "wall_seconds": None}


@pytest.mark.usefixtures("linear_route")
@pytest.mark.parametrize("param_budget", [fast._PARAM_BUDGET, 200])
def test_a_batch_larger_than_every_client_costs_its_rows_not_batch_size(
    param_budget: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every (step, client) pair was padded to batch_size columns: 2 rounds of the default
    # config at batch size 300,000 took 3.7 GB; a batch never holds more than a client's rows
    monkeypatch.setattr(fast, "_PARAM_BUDGET", param_budget)  # 200: groups of 2 clients
    model = build_model(MODELS["mlp1"], (6,), 4, seed=0)
    hp = ClientConfig(lr=0.1, batch_size=100_000, momentum=0.9, mu=0.3, local_epochs=2)
    work = work_of(params_of(model), hp)
    draws = _fast_schedule.draw_permutations(DATA, work)
    group = np.argsort(-draws.steps, kind="stable")[:-1]  # the empty client takes no step
    first_row = DATA.offsets[COHORT][group]
    sched = _fast_schedule.build_schedule(draws, group, first_row, hp.batch_size, DATA.x.dtype)
    assert sched.rows.shape == sched.weight.shape == sched.real.shape == (22, max(SIZES))
    assert sched.real.sum(axis=1).tolist() == 2 * draws.n[group].tolist()  # one batch a pass
    got = compare(model, hp)
    # the same numbers as a batch of exactly the largest client's rows
    exact = fast.train_fast(
        model, DATA, work_of(params_of(model), dataclasses.replace(hp, batch_size=64))
    )
    assert all(torch.equal(got.deltas[k], exact.deltas[k]) for k in got.deltas)
    assert np.array_equal(got.losses, exact.losses)
