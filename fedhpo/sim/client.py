"""The local update of one client (minibatch SGD, optional FedProx term) and evaluation.

Both are pure functions of tensors: the model is only a skeleton for
``torch.func.functional_call``; parameters travel as ordered ``dict[str, Tensor]`` keyed like
``model.named_parameters()``, and the batches come from the ``torch.Generator`` passed in.
A model's own random ops (a plugin's dropout) draw from torch's global generator: the
reference trainer (:func:`~fedhpo.sim.cohort.train_reference`) seeds it per client inside
``torch.random.fork_rng``, in train mode (:func:`modes`); :func:`evaluate` scores in eval mode
from a fixed seed. Either way each module's mode and the global generator are left as they
were.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from fedhpo.config import ClientConfig

Params = dict[str, Tensor]

_EVAL_SEED = 0
"""Seed of the global generator while :func:`evaluate` runs (random ops in eval mode)."""


@dataclass(frozen=True)
class ClientUpdate:
    """What one client sends back after local training."""

    delta: Params
    """Local parameters minus the global parameters it started from."""
    num_samples: int
    """Training rows of the client (the aggregation weight)."""
    train_loss: float
    """Sample-weighted mean cross-entropy over all local batches, without the proximal term
    (0.0 for a client with no rows)."""
    steps: int
    """SGD steps taken."""
    finite: bool
    """False if a loss or a parameter became NaN/inf; training stopped right there."""


@dataclass(frozen=True)
class EvalResult:
    """Summed cross-entropy and correct predictions over ``count`` rows."""

    loss_sum: float
    correct: int
    count: int

    @property
    def loss(self) -> float:
        """Mean cross-entropy (nan when there are no rows)."""
        return self.loss_sum / self.count if self.count else math.nan

    @property
    def accuracy(self) -> float:
        """Share of rows whose arg-max prediction is the label (nan when there are no rows)."""
        return self.correct / self.count if self.count else math.nan


def local_update(
    model: nn.Module,
    global_params: Mapping[str, Tensor],
    x: Tensor,
    y: Tensor,
    hp: ClientConfig,
    generator: torch.Generator,
    max_steps: int | None = None,
) -> ClientUpdate:
    """Train from ``global_params`` on the client's rows ``(x, y)`` and return the delta.

    Minibatch SGD: each pass over the data draws ``torch.randperm(n, generator=generator)``
    (and nothing else is drawn) and cuts it into batches of ``hp.batch_size``, the last one
    possibly short. ``hp.local_steps`` steps are taken if set (starting new passes as needed),
    else ``hp.local_epochs`` passes; never more than ``max_steps`` when given (partial work
    that fits a deadline: the same batches, cut short). The batch loss is mean cross-entropy plus
    ``hp.mu / 2 * ||w - w_global||^2``; the step follows ``torch.optim.SGD`` (dampening 0, no
    Nesterov): ``g = grad + weight_decay * w``, ``buf = g`` at the first step else
    ``momentum * buf + g``, ``w = w - lr * buf``. Inputs are never modified. The model runs
    in the mode it is in and its random ops draw from the global generator: callers put it
    in train mode and seed that generator (as :func:`~fedhpo.sim.cohort.train_reference`).
    """
    anchor = {k: v.detach() for k, v in global_params.items()}
    params = dict(anchor)
    n = int(x.shape[0])
    buf: Params | None = None
    loss_sum, rows, steps, finite = 0.0, 0, 0, True
    for idx in _batches(n, hp, generator, max_steps):
        loss, grads = _loss_and_grads(model, params, x[idx], y[idx])
        loss_sum += loss * len(idx)
        rows += len(idx)
        if not math.isfinite(loss):
            finite = False
            break
        params, buf = _sgd_step(params, grads, anchor, buf, hp)
        steps += 1
        if not all(bool(torch.isfinite(w).all()) for w in params.values()):
            finite = False
            break
    delta = {k: params[k] - anchor[k] for k in anchor}
    train_loss = loss_sum / rows if rows else 0.0
    return ClientUpdate(delta, n, train_loss, steps, finite)


def evaluate(
    model: nn.Module, params: Mapping[str, Tensor], x: Tensor, y: Tensor, batch_size: int = 256
) -> EvalResult:
    """Summed cross-entropy and arg-max accuracy of ``params`` on ``(x, y)``, in chunks.

    In eval mode (no dropout; a module's mode is put back after), with any random op the
    model still has drawing from a fixed seed inside ``fork_rng``: the same parameters
    always score the same, and the global generator is left as it was.
    """
    return evaluate_each(model, params, [(x, y)], batch_size)[0]


def evaluate_each(
    model: nn.Module,
    params: Mapping[str, Tensor],
    sets: Iterable[tuple[Tensor, Tensor]],
    batch_size: int = 256,
) -> list[EvalResult]:
    """:func:`evaluate` on each ``(x, y)`` of ``sets`` (the same results), switching the
    model's modes and forking the generator once for all of them."""
    out = []
    with modes(model, training=False), torch.random.fork_rng(devices=[]), torch.no_grad():
        for x, y in sets:
            torch.default_generator.manual_seed(_EVAL_SEED)
            loss_sum, correct = 0.0, 0
            for start in range(0, int(x.shape[0]), batch_size):
                xb, yb = x[start : start + batch_size], y[start : start + batch_size]
                logits = functional_call(model, dict(params), (xb,))
                loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
                correct += int((logits.argmax(dim=1) == yb).sum())
            out.append(EvalResult(loss_sum, correct, int(x.shape[0])))
    return out


@contextmanager
def modes(model: nn.Module, training: bool) -> Iterator[nn.Module]:
    """Every module of ``model`` in train (``training``) or eval mode inside the block; each
    module's own mode is put back after."""
    before = [(m, m.training) for m in model.modules()]
    try:
        for m, _ in before:
            m.training = training
        yield model
    finally:
        for m, mode in before:
            m.training = mode


def _batches(
    n: int, hp: ClientConfig, generator: torch.Generator, max_steps: int | None
) -> Iterator[Tensor]:
    """Index tensors of the local batches, drawing one permutation per pass when it starts."""
    if n == 0 or max_steps == 0:
        return
    steps, passes = 0, 0
    while (steps < hp.local_steps) if hp.local_steps is not None else (passes < hp.local_epochs):
        perm = torch.randperm(n, generator=generator)
        passes += 1
        for start in range(0, n, hp.batch_size):
            yield perm[start : start + hp.batch_size]
            steps += 1
            if steps in (hp.local_steps, max_steps):
                return


def _loss_and_grads(model: nn.Module, params: Params, x: Tensor, y: Tensor) -> tuple[float, Params]:
    """Mean cross-entropy of one batch and its gradient with respect to ``params``."""
    leaves = {k: w.detach().requires_grad_(True) for k, w in params.items()}
    loss = F.cross_entropy(functional_call(model, leaves, (x,)), y)
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return float(loss.detach()), dict(zip(leaves, grads, strict=True))


def _sgd_step(
    params: Params, grads: Params, anchor: Params, buf: Params | None, hp: ClientConfig
) -> tuple[Params, Params | None]:
    """One ``torch.optim.SGD`` step (out of place); the proximal gradient is added first."""
    new: Params = {}
    new_buf: Params = {}
    with torch.no_grad():
        for k, w in params.items():
            g = grads[k]
            if hp.mu:
                g = g + hp.mu * (w - anchor[k])
            if hp.weight_decay:
                g = g.add(w, alpha=hp.weight_decay)
            if hp.momentum:
                g = g if buf is None else buf[k].mul(hp.momentum).add(g)
                new_buf[k] = g
            new[k] = w.add(g, alpha=-hp.lr)
    return new, (new_buf if hp.momentum else None)
