"""Golden numbers: FedAvg, FedProx and FedAdam on two tiny clients, computed by hand.

The model is 1-feature, 2-class logistic regression. Starting from ``W = [[w], [-w]]``,
``b = [c, -c]`` every gradient is antisymmetric, so the parameters keep that form and the
run reduces to two scalars (w, c). With ``s = w * x + c`` the logits are ``(s, -s)``, so

    p0 = sigmoid(2 s),    dCE/dz0 = p0 - [y == 0] = -dCE/dz1,
    dCE/dw = mean((p0 - [y == 0]) * x),    dCE/dc = mean(p0 - [y == 0]),
    CE = log(1 + exp(-2 s)) if y == 0 else log(1 + exp(2 s)).

Client A has one row (x=2, y=0); client B has two rows (x=1, y=1) and (x=3, y=0), so the
aggregation weights are 1/3 and 2/3. The expected values below use only these formulas and
plain Python floats.
"""

from __future__ import annotations

import math

import pytest
import torch

from fedhpo.config import ClientConfig, ModelConfig, ServerConfig
from fedhpo.sim.client import ClientUpdate, local_update
from fedhpo.sim.models import build_model
from fedhpo.sim.server import aggregate, make_server_optimizer

XA, YA = [2.0], [0]
XB, YB = [1.0, 3.0], [1, 0]
CLIENTS = [(XA, YA), (XB, YB)]
MODEL = build_model(ModelConfig("logreg"), (1,), 2, seed=0)
FULL_BATCH = 8  # larger than any client, so every step is one full batch


def sigmoid(t: float) -> float:
    return 1.0 / (1.0 + math.exp(-t))


def grad(w: float, c: float, xs: list[float], ys: list[int]) -> tuple[float, float]:
    """Closed-form (dCE/dw, dCE/dc) of the mean cross-entropy (module docstring)."""
    r = [sigmoid(2 * (w * x + c)) - (y == 0) for x, y in zip(xs, ys, strict=True)]
    return sum(ri * x for ri, x in zip(r, xs, strict=True)) / len(xs), sum(r) / len(xs)


def ce(w: float, c: float, xs: list[float], ys: list[int]) -> float:
    """Mean cross-entropy of one batch (module docstring)."""
    s = [w * x + c for x in xs]
    return sum(
        math.log1p(math.exp(-2 * si if y == 0 else 2 * si)) for si, y in zip(s, ys, strict=True)
    ) / len(xs)


def params_of(w: float, c: float) -> dict[str, torch.Tensor]:
    return {"linear.weight": torch.tensor([[w], [-w]]), "linear.bias": torch.tensor([c, -c])}


def assert_pair(tensors: dict[str, torch.Tensor], w: float, c: float, sign: float = -1) -> None:
    """``tensors`` is ``{weight: [[w], [sign*w]], bias: [c, sign*c]}`` up to float32 error."""
    torch.testing.assert_close(
        tensors["linear.weight"], torch.tensor([[w], [sign * w]]), rtol=1e-5, atol=1e-7
    )
    torch.testing.assert_close(
        tensors["linear.bias"], torch.tensor([c, sign * c]), rtol=1e-5, atol=1e-7
    )


def train(params: dict[str, torch.Tensor], hp: ClientConfig) -> list[ClientUpdate]:
    """The code under test: both clients' local updates."""
    return [
        local_update(
            MODEL,
            params,
            torch.tensor([[x] for x in xs]),
            torch.tensor(ys),
            hp,
            torch.Generator().manual_seed(i),
        )
        for i, (xs, ys) in enumerate(CLIENTS)
    ]


def test_fedavg_two_local_steps() -> None:
    lr = 0.5
    hp = ClientConfig(lr=lr, batch_size=FULL_BATCH, local_epochs=2)
    updates = train(params_of(0.0, 0.0), hp)

    # Client A, step 1 from (0, 0): p0 = 1/2, r = -1/2, grad = (-1/2 * 2, -1/2) = (-1, -0.5)
    #   -> (w, c) = (0 + 0.5 * 1, 0 + 0.5 * 0.5) = (0.5, 0.25); loss log 2.
    # Step 2: s = 0.5 * 2 + 0.25 = 1.25, r = sigmoid(2.5) - 1
    #   -> w = 0.5 - 0.5 * 2 r = 0.5 + (1 - sigmoid(2.5)), c = 0.25 + 0.5 (1 - sigmoid(2.5)).
    q = 1 - sigmoid(2.5)
    wa, ca = 0.5 + q, 0.25 + 0.5 * q
    loss_a = (math.log(2) + math.log1p(math.exp(-2.5))) / 2
    # Client B, step 1 from (0, 0): r = (1/2, -1/2), grad_w = (1/2 * 1 - 1/2 * 3) / 2 = -1/2,
    #   grad_c = 0 -> (w, c) = (0.25, 0); both rows lose log 2.
    # Step 2: s = (0.25, 0.75), r = (sigmoid(0.5), sigmoid(1.5) - 1).
    r1, r2 = sigmoid(0.5), sigmoid(1.5) - 1
    wb, cb = 0.25 - lr * (r1 * 1 + r2 * 3) / 2, 0.0 - lr * (r1 + r2) / 2
    loss_b = (2 * math.log(2) + math.log1p(math.exp(0.5)) + math.log1p(math.exp(-1.5))) / 4

    a, b = updates
    assert (a.num_samples, a.steps, a.finite) == (1, 2, True)
    assert (b.num_samples, b.steps, b.finite) == (2, 2, True)
    assert_pair(a.delta, wa, ca)
    assert_pair(b.delta, wb, cb)
    assert a.train_loss == pytest.approx(loss_a, rel=1e-6)
    assert b.train_loss == pytest.approx(loss_b, rel=1e-6)

    # Aggregate with weights 1/3 and 2/3, then FedAvg: x = 0 + delta.
    dw, dc = (wa + 2 * wb) / 3, (ca + 2 * cb) / 3
    delta = aggregate(updates)
    assert_pair(delta, dw, dc)
    opt = make_server_optimizer(ServerConfig())
    new, _ = opt.step(params_of(0.0, 0.0), delta, opt.init(params_of(0.0, 0.0)))
    assert_pair(new, dw, dc)


def test_fedprox_adds_mu_times_distance_on_second_step() -> None:
    lr, mu = 0.5, 0.4
    w0, c0 = 0.1, -0.2  # a non-zero global model, so w - w_global differs from w
    avg = train(params_of(w0, c0), ClientConfig(lr=lr, batch_size=FULL_BATCH, local_epochs=2))
    prox = train(
        params_of(w0, c0), ClientConfig(lr=lr, batch_size=FULL_BATCH, local_epochs=2, mu=mu)
    )

    expected = []
    for xs, ys in CLIENTS:
        # Step 1: w1 = w0, so the proximal gradient mu * (w - w0) is zero.
        gw, gc = grad(w0, c0, xs, ys)
        w1, c1 = w0 - lr * gw, c0 - lr * gc
        # Step 2: the gradient gains mu * (w1 - w0) and mu * (c1 - c0).
        gw, gc = grad(w1, c1, xs, ys)
        w2 = w1 - lr * (gw + mu * (w1 - w0))
        c2 = c1 - lr * (gc + mu * (c1 - c0))
        expected.append(
            (w2 - w0, c2 - c0, w1 - w0, c1 - c0, ce(w0, c0, xs, ys), ce(w1, c1, xs, ys))
        )

    for u_avg, u_prox, (dw, dc, d1w, d1c, l0, l1) in zip(avg, prox, expected, strict=True):
        assert_pair(u_prox.delta, dw, dc)
        # exactly the proximal pull on step 2: prox - avg = -lr * mu * (w1 - w0)
        diff = {k: u_prox.delta[k] - u_avg.delta[k] for k in u_prox.delta}
        assert_pair(diff, -lr * mu * d1w, -lr * mu * d1c)
        # the reported loss is plain cross-entropy, no proximal term (full batches of n rows)
        assert u_prox.train_loss == pytest.approx((l0 + l1) / 2, rel=1e-6)

    dw = (expected[0][0] + 2 * expected[1][0]) / 3
    dc = (expected[0][1] + 2 * expected[1][1]) / 3
    opt = make_server_optimizer(ServerConfig())
    new, _ = opt.step(params_of(w0, c0), aggregate(prox), opt.init(params_of(w0, c0)))
    assert_pair(new, w0 + dw, c0 + dc)


def test_fedadam_two_rounds() -> None:
    client_lr, lr, b1, b2, tau = 0.5, 0.1, 0.9, 0.99, 1e-3
    hp = ClientConfig(lr=client_lr, batch_size=FULL_BATCH, local_steps=1)
    opt = make_server_optimizer(ServerConfig(optimizer="adam", lr=lr, beta1=b1, beta2=b2, tau=tau))
    params = params_of(0.0, 0.0)
    state = opt.init(params)
    assert_pair(state.m, 0.0, 0.0)
    assert_pair(state.v, tau**2, tau**2, sign=1)  # v starts at tau^2 everywhere

    # Round 1, from (0, 0): A's gradient is (-1, -0.5) -> delta (0.5, 0.25); B's is
    # (-0.5, 0) -> delta (0.25, 0); weighted: ((0.5 + 2 * 0.25) / 3, 0.25 / 3) = (1/3, 1/12).
    d = (1 / 3, 1 / 12)
    m = tuple((1 - b1) * di for di in d)
    v = tuple(b2 * tau**2 + (1 - b2) * di**2 for di in d)  # same for the +/- entries
    x = tuple(0.0 + lr * mi / (math.sqrt(vi) + tau) for mi, vi in zip(m, v, strict=True))
    delta = aggregate(train(params, hp))
    assert_pair(delta, *d)
    params, state = opt.step(params, delta, state)
    assert_pair(state.m, *m)
    assert_pair(state.v, *v, sign=1)
    assert_pair(params, *x)

    # Round 2, from x: one full-batch step per client, weighted 1/3 and 2/3.
    ga, gb = grad(*x, XA, YA), grad(*x, XB, YB)
    d = tuple(-client_lr * (ga[i] + 2 * gb[i]) / 3 for i in range(2))
    m = tuple(b1 * mi + (1 - b1) * di for mi, di in zip(m, d, strict=True))
    v = tuple(b2 * vi + (1 - b2) * di**2 for vi, di in zip(v, d, strict=True))
    x = tuple(xi + lr * mi / (math.sqrt(vi) + tau) for xi, mi, vi in zip(x, m, v, strict=True))
    delta = aggregate(train(params, hp))
    assert_pair(delta, *d)
    params, state = opt.step(params, delta, state)
    assert_pair(state.m, *m)
    assert_pair(state.v, *v, sign=1)
    assert_pair(params, *x)
