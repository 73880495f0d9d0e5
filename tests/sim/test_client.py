"""Tests for the local update (against torch.optim.SGD) and for evaluation."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fedhpo.config import ClientConfig, ModelConfig
from fedhpo.sim.client import ClientUpdate, evaluate, local_update
from fedhpo.sim.models import build_model


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _data(n: int, dim: int = 5, classes: int = 3, seed: int = 0):
    g = _gen(seed)
    x = torch.randn(n, dim, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return x, y


def _setup(n: int = 11, hidden: list[int] | None = None):
    model = build_model(ModelConfig("mlp", {"hidden": hidden or [6]}), (5,), 3, seed=0)
    params = {k: p.detach().clone() for k, p in model.named_parameters()}
    x, y = _data(n)
    return model, params, x, y


def _schedule(n: int, hp: ClientConfig, seed: int) -> list[torch.Tensor]:
    """The documented batch order, written out independently: one randperm per pass."""
    g = _gen(seed)
    total = hp.local_steps or hp.local_epochs * math.ceil(n / hp.batch_size)
    batches: list[torch.Tensor] = []
    while len(batches) < total:
        perm = torch.randperm(n, generator=g)
        batches += list(perm.split(hp.batch_size))
    return batches[:total]


def _reference(model, params, x, y, hp: ClientConfig, seed: int):
    """Train a copy of the module with torch.optim.SGD on the same batches."""
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for k, p in ref.named_parameters():
            p.copy_(params[k])
    opt = torch.optim.SGD(
        ref.parameters(), lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay
    )
    losses = []
    for idx in _schedule(len(x), hp, seed):
        opt.zero_grad()
        ce = F.cross_entropy(ref(x[idx]), y[idx])
        prox = sum(((p - params[k]) ** 2).sum() for k, p in ref.named_parameters())
        (ce + hp.mu / 2 * prox).backward()
        opt.step()
        losses.append((ce.item(), len(idx)))
    train_loss = sum(lo * m for lo, m in losses) / sum(m for _, m in losses)
    return {k: p.detach() for k, p in ref.named_parameters()}, train_loss, len(losses)


@pytest.mark.parametrize(
    "hp",
    [
        ClientConfig(lr=0.1, batch_size=4),
        ClientConfig(lr=0.1, batch_size=4, momentum=0.9),
        ClientConfig(lr=0.1, batch_size=3, momentum=0.5, weight_decay=0.01, local_epochs=3),
        ClientConfig(lr=0.2, batch_size=5, mu=0.7, weight_decay=0.1, momentum=0.3),
        ClientConfig(lr=0.1, batch_size=4, local_steps=7, momentum=0.9, mu=0.1),
        ClientConfig(lr=0.1, batch_size=64, local_epochs=2),
    ],
    ids=["plain", "momentum", "wd+momentum", "prox+wd+momentum", "local_steps", "full_batch"],
)
def test_matches_torch_optim_sgd(hp: ClientConfig) -> None:
    model, params, x, y = _setup()
    upd = local_update(model, params, x, y, hp, _gen(42))
    ref_params, ref_loss, ref_steps = _reference(model, params, x, y, hp, 42)
    assert upd.finite
    assert upd.num_samples == len(x)
    assert upd.steps == ref_steps
    assert list(upd.delta) == list(params)
    for k in params:
        torch.testing.assert_close(params[k] + upd.delta[k], ref_params[k], rtol=1e-6, atol=1e-6)
    assert upd.train_loss == pytest.approx(ref_loss, rel=1e-6)


def test_local_steps_cycle_epochs() -> None:
    """11 rows in batches of 4 -> passes of 3 batches (4, 4, 3); 7 steps use 3 permutations."""
    model, params, x, y = _setup(n=11)
    hp = ClientConfig(lr=0.1, batch_size=4, local_steps=7)
    gen = _gen(5)
    upd = local_update(model, params, x, y, hp, gen)
    assert upd.steps == 7
    # exactly three permutations were drawn: the generator is where three randperms leave it
    g = _gen(5)
    for _ in range(3):
        torch.randperm(11, generator=g)
    assert torch.equal(gen.get_state(), g.get_state())
    # parameters and the loss (weighted by batch sizes 4, 4, 3, 4, 4, 3, 4) match torch.optim
    ref_params, ref_loss, _ = _reference(model, params, x, y, hp, 5)
    for k in params:
        torch.testing.assert_close(params[k] + upd.delta[k], ref_params[k], rtol=1e-6, atol=1e-6)
    assert upd.train_loss == pytest.approx(ref_loss, rel=1e-6)


def test_local_steps_end_on_pass_boundary_draw_no_extra_permutation() -> None:
    model, params, x, y = _setup(n=8)
    gen = _gen(1)
    local_update(model, params, x, y, ClientConfig(batch_size=4, local_steps=4), gen)
    g = _gen(1)
    torch.randperm(8, generator=g)
    torch.randperm(8, generator=g)
    assert torch.equal(gen.get_state(), g.get_state())


def test_epochs_count_steps() -> None:
    model, params, x, y = _setup(n=11)
    upd = local_update(model, params, x, y, ClientConfig(batch_size=4, local_epochs=2), _gen(0))
    assert upd.steps == 6


def test_permutation_deterministic_per_generator_seed() -> None:
    model, params, x, y = _setup()
    hp = ClientConfig(lr=0.1, batch_size=3, local_epochs=2)
    a = local_update(model, params, x, y, hp, _gen(9))
    b = local_update(model, params, x, y, hp, _gen(9))
    c = local_update(model, params, x, y, hp, _gen(10))
    assert all(torch.equal(a.delta[k], b.delta[k]) for k in params)
    assert a.train_loss == b.train_loss
    assert not all(torch.equal(a.delta[k], c.delta[k]) for k in params)


def test_global_rng_untouched() -> None:
    model, params, x, y = _setup()
    state = torch.get_rng_state()
    local_update(model, params, x, y, ClientConfig(batch_size=3), _gen(0))
    assert torch.equal(torch.get_rng_state(), state)


def test_inputs_not_modified() -> None:
    model, params, x, y = _setup()
    before = {k: v.clone() for k, v in params.items()}
    module_before = {k: p.detach().clone() for k, p in model.named_parameters()}
    x0, y0 = x.clone(), y.clone()
    hp = ClientConfig(lr=0.5, batch_size=3, momentum=0.9, weight_decay=0.1, mu=0.5)
    local_update(model, params, x, y, hp, _gen(0))
    assert all(torch.equal(params[k], before[k]) for k in params)
    assert all(torch.equal(p, module_before[k]) for k, p in model.named_parameters())
    assert torch.equal(x, x0) and torch.equal(y, y0)


def test_train_loss_excludes_proximal_term() -> None:
    """Same first-batch loss with or without mu (params equal global there); full batch."""
    model, params, x, y = _setup()
    hp = ClientConfig(lr=0.1, batch_size=64, local_steps=1)
    plain = local_update(model, params, x, y, hp, _gen(0))
    prox = local_update(model, params, x, y, dataclasses.replace(hp, mu=100.0), _gen(0))
    with torch.no_grad():
        expected = F.cross_entropy(model(x), y).item()
    assert plain.train_loss == pytest.approx(expected, rel=1e-6)
    assert prox.train_loss == pytest.approx(expected, rel=1e-6)


def test_huge_lr_is_not_finite_and_stops() -> None:
    model, params, x, y = _setup()
    hp = ClientConfig(lr=1e30, batch_size=2, local_epochs=5)
    upd = local_update(model, params, x, y, hp, _gen(0))
    assert not upd.finite
    assert upd.steps < 5 * 6


def test_empty_client() -> None:
    model, params, _, _ = _setup()
    x, y = torch.zeros(0, 5), torch.zeros(0, dtype=torch.long)
    upd = local_update(model, params, x, y, ClientConfig(local_steps=3), _gen(0))
    assert (upd.num_samples, upd.steps, upd.train_loss, upd.finite) == (0, 0, 0.0, True)
    assert all(not d.any() for d in upd.delta.values())


def test_client_update_is_frozen() -> None:
    upd = ClientUpdate({}, 1, 0.0, 1, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        upd.steps = 2  # type: ignore[misc]


def test_evaluate_matches_direct_computation() -> None:
    model, params, x, y = _setup(n=50)
    with torch.no_grad():
        logits = model(x)
    res = evaluate(model, params, x, y, batch_size=7)
    assert res.count == 50
    assert res.correct == int((logits.argmax(1) == y).sum())
    assert res.loss == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert res.accuracy == res.correct / 50
    whole = evaluate(model, params, x, y)
    assert whole.correct == res.correct
    assert whole.loss_sum == pytest.approx(res.loss_sum, rel=1e-5)


def test_evaluate_uses_given_params_not_module() -> None:
    model = nn.Sequential(nn.Linear(2, 2))
    params = {"0.weight": torch.eye(2), "0.bias": torch.zeros(2)}
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]])
    res = evaluate(model, params, x, torch.tensor([0, 1, 1]))
    assert (res.correct, res.count) == (2, 3)


def test_evaluate_empty() -> None:
    model, params, _, _ = _setup()
    res = evaluate(model, params, torch.zeros(0, 5), torch.zeros(0, dtype=torch.long))
    assert res.count == 0 and math.isnan(res.loss) and math.isnan(res.accuracy)


def _dropout_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3)
    )


def test_evaluate_runs_in_eval_mode_and_puts_each_modules_mode_back() -> None:
    # dropout stayed on: the same parameters scored three times gave three losses
    model = _dropout_mlp()
    model[1].eval()  # a module in eval mode stays so; the rest stay in training mode
    params = {k: p.detach().clone() for k, p in model.named_parameters()}
    x, y = _data(40)
    state = torch.get_rng_state()
    scores = [evaluate(model, params, x, y, batch_size=16) for _ in range(3)]
    assert scores[0] == scores[1] == scores[2]
    assert torch.equal(torch.get_rng_state(), state)
    assert [m.training for m in model] == [True, False, True, True, True] and model.training
    with torch.no_grad():
        logits = copy.deepcopy(model).eval()(x)
    assert scores[0].correct == int((logits.argmax(1) == y).sum())
    assert scores[0].loss == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
