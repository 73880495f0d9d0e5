"""Work descriptions: the fast trainer matches the reference on per-client budgets and
per-client hyperparameters, for every field of ClientConfig."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from fedhpo.config import ClientConfig, ModelConfig
from fedhpo.errors import ConfigError
from fedhpo.sim.cohort import REFERENCE
from fedhpo.sim.fast import FAST
from fedhpo.sim.models import build_model
from fedhpo.sim.work import CLIENT_FIELDS, Work, train_work
from tests.sim.test_fast import COHORT, DATA, Tanh, assert_same_results, params_of

BASE = ClientConfig(lr=0.1, batch_size=4)

#: Per-client values for every ClientConfig field, cycled over the clients. A new client
#: option fails test_every_client_option_has_variants until it is added here, and then
#: the fast trainer must match the reference on it.
VARIANTS = {
    "lr": (0.1, 0.03, 0.2),
    "momentum": (0.0, 0.9, 0.5),
    "weight_decay": (0.0, 0.05, 0.2),
    "local_epochs": (1, 3, 2),
    "local_steps": (None, 7, 2),
    "batch_size": (4, 3, 8),
    "mu": (0.0, 1.0, 0.3),
}


def cycled(values: tuple, k: int = len(COHORT)) -> tuple:
    return tuple(itertools.islice(itertools.cycle(values), k))


def models():
    torch.manual_seed(0)
    return {
        "mlp": build_model(ModelConfig("mlp", {"hidden": [8]}), (6,), 4, seed=1),
        "vmap": Tanh(),
    }


MODELS = models()


def work(model, overrides=None, budgets=None, hp=BASE, streams=3) -> Work:
    k = len(COHORT)
    return Work(COHORT, params_of(model), hp, 7, np.full(k, streams), 0, budgets, overrides or {})


def both(model, w: Work):
    """The fast trainer's result equals the reference's (to float rounding)."""
    ref = train_work(REFERENCE, model, DATA, w)
    got = train_work(FAST, model, DATA, w)
    assert_same_results(ref, got)
    return ref


def test_every_client_option_has_variants() -> None:
    assert set(VARIANTS) == set(CLIENT_FIELDS)
    assert FAST.per_client | {"batch_size"} == set(CLIENT_FIELDS)
    assert REFERENCE.per_client == set(CLIENT_FIELDS)


@pytest.mark.usefixtures("linear_route")
@pytest.mark.parametrize("field", sorted(VARIANTS))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_per_client_option_matches_the_reference(name: str, field: str) -> None:
    model = MODELS[name]
    varied = both(model, work(model, {field: cycled(VARIANTS[field])}))
    uniform = both(model, work(model))
    # the option really changed the training of some client, on both trainers
    assert any(not torch.equal(varied.deltas[k], uniform.deltas[k]) for k in varied.deltas)


@pytest.mark.usefixtures("linear_route")
@pytest.mark.parametrize("name", sorted(MODELS))
def test_all_options_varying_at_once(name: str) -> None:
    model = MODELS[name]
    both(model, work(model, {f: cycled(v[::-1]) for f, v in VARIANTS.items()}))


@pytest.mark.usefixtures("linear_route")
def test_per_client_step_budgets() -> None:
    model = MODELS["mlp"]
    hp = ClientConfig(lr=0.1, batch_size=4, momentum=0.5, local_epochs=2)
    budgets = cycled((0, 1, 3, 1000))
    full = both(model, work(model, hp=hp))
    cut = both(model, work(model, budgets=np.array(budgets), hp=hp))
    assert cut.steps.tolist() == np.minimum(full.steps, budgets).tolist()
    zero = np.array(budgets) == 0
    assert all(float(d[zero].abs().sum()) == 0.0 for d in cut.deltas.values())
    same = np.array(budgets) >= full.steps  # a budget above the plan changes nothing
    for k in full.deltas:
        assert torch.equal(cut.deltas[k][same], full.deltas[k][same])


@pytest.mark.usefixtures("linear_route")
def test_budgets_with_per_client_options() -> None:
    model = MODELS["mlp"]
    overrides = {"local_steps": cycled((None, 5)), "lr": cycled((0.05, 0.1, 0.2))}
    both(model, work(model, overrides, budgets=np.array(cycled((2, 0, 9, 4)))))


def test_each_client_has_its_own_stream() -> None:
    model = MODELS["mlp"]
    a = both(model, work(model, streams=3))
    streams = np.array(cycled((3, 4)))
    b = both(model, work(model, streams=streams))
    same = streams == 3
    busy = a.steps > 0
    for k in a.deltas:
        assert torch.equal(a.deltas[k][same], b.deltas[k][same])
        assert not torch.equal(a.deltas[k][~same & busy], b.deltas[k][~same & busy])


def test_work_is_validated() -> None:
    model = MODELS["mlp"]
    with pytest.raises(ValueError, match="unknown client field 'lrr'"):
        work(model, {"lrr": cycled((0.1,))})
    with pytest.raises(ValueError, match="has 2 values for 12 clients"):
        work(model, {"lr": (0.1, 0.2)})
    with pytest.raises(ConfigError, match="lr"):
        work(model, {"lr": cycled((0.1, -1.0))})
    with pytest.raises(ValueError, match="budgets"):
        work(model, budgets=np.full(len(COHORT), -1))


@pytest.mark.usefixtures("linear_route")
def test_stacked_starts_each_client_its_own_run() -> None:
    model = MODELS["mlp"]
    k = len(COHORT)
    g = torch.Generator().manual_seed(5)
    starts = {
        n: p + 0.1 * torch.randn((k, *p.shape), generator=g) for n, p in params_of(model).items()
    }
    lrs = cycled((0.1, 1e30, 0.05))  # some 1e30 clients diverge; no other may stop for them
    hp = ClientConfig(lr=0.1, batch_size=4, momentum=0.5, local_epochs=3)
    w = Work(COHORT, starts, hp, 7, np.full(k, 3), 0, None, {"lr": lrs}, stacked=True)
    ref = train_work(REFERENCE, model, DATA, w)
    got = train_work(FAST, model, DATA, w)
    ok = np.array(lrs) != 1e30
    assert not ref.finite.all() and not got.finite.all()
    assert got.finite[ok].all() and ref.finite[ok].all()
    for key in ref.deltas:
        torch.testing.assert_close(got.deltas[key][ok], ref.deltas[key][ok], rtol=0, atol=1e-5)
    # each row started from its own parameters: row 0 equals an unstacked work from them
    one = Work(COHORT[:1], {n: s[0] for n, s in starts.items()}, hp, 7, np.full(1, 3))
    alone = train_work(REFERENCE, model, DATA, one)
    for key in ref.deltas:
        assert torch.equal(alone.deltas[key][0], ref.deltas[key][0])
