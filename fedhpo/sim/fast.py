"""The fast cohort trainer: all sampled clients of a round step together (batched matmuls/vmap).

:func:`train_cohort_fast` returns the same :class:`~fedhpo.sim.client.ClientUpdate` list as
:func:`fedhpo.sim.cohort.train_cohort_reference` (to float rounding): each client draws
``torch.randperm(n, generator=...)`` per pass from ``torch_generator(seed, STREAM_CLIENT,
round, client)`` exactly as :func:`~fedhpo.sim.client.local_update` does, and takes the same
SGD steps (momentum, weight decay, FedProx ``mu``).

How: clients are sorted by their number of local steps (longest first), so at step ``s`` the
clients still training are a prefix of that order and finished ones simply drop out of the
batch: heavy-tailed client sizes cost no padding of whole clients. A short last batch is
padded with copies of one of its rows weighted 0, so its loss is the mean over its real rows.
All batch indices of a cohort are built up front as one packed ``(steps x active clients,
batch)`` matrix, and the rows are gathered with one ``index_select`` per chunk of steps; the
Python work per step is a fixed number of tensor operations, whatever the cohort size.

Models that are stacks of ``nn.Linear`` with ``ReLU`` between (optionally after
``nn.Flatten``: the built-in logreg and mlp, recognised by module type, not by name) get a
hand-derived forward/backward with ``torch.bmm`` (:class:`_LinearStack`). Other models without
buffers or convolutions use ``torch.func.vmap(grad(functional_call))``, which assumes rows are
processed independently (no batch statistics). The rest (e.g. the built-in cnn: vmapped
convolutions were slower than the loop on CPU) fall back to the reference loop, with one
warning per model class.

On divergence (a non-finite loss or parameter) the whole cohort stops within a few steps; the
updates are returned up to the first non-finite client in cohort order (as the reference
stops there), which is flagged ``finite=False``. The other updates of such a cohort are
partial; the engine discards the round anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from fedhpo.config import ClientConfig
from fedhpo.sim._fast_kernels import (
    KERNELS,
    GradFn,
    Kernel,
    fast_path,
    kernel_for,
    warn_once,
)
from fedhpo.sim._fast_schedule import Schedule, build_schedule, draw_permutations
from fedhpo.sim.client import ClientUpdate, Params
from fedhpo.sim.cohort import train_cohort_reference
from fedhpo.sim.data import FederatedDataset

__all__ = ["PER_CLIENT_HP", "fast_path", "train_cohort_fast", "train_cohort_stacked"]

PER_CLIENT_HP = ("lr", "momentum", "weight_decay", "mu")
"""Client settings :func:`train_cohort_stacked` takes per client (the rest set the schedule)."""

_PARAM_BUDGET = 1 << 25
"""Most parameter floats held per copy (params, grads, momentum): caps clients per group."""
_GATHER_BUDGET = 1 << 22
"""Most input floats gathered at once (one chunk of steps)."""
_CHECK_EVERY = 8
"""Steps between checks for a non-finite loss (each check is a synchronising reduction)."""


@dataclass
class _GroupRun:
    params: list[Tensor]
    logp: Tensor
    steps_run: int


def _sgd(
    ps: list[Tensor],
    grads: list[Tensor],
    anchors: list[Tensor],
    bufs: list[Tensor] | None,
    hp: ClientConfig,
    first: bool,
) -> None:
    """``torch.optim.SGD``'s step in place on stacked params (proximal gradient added first)."""
    for k, (w, g) in enumerate(zip(ps, grads, strict=True)):
        if hp.mu:
            g.add_(w - anchors[k], alpha=hp.mu)
        if hp.weight_decay:
            g.add_(w, alpha=hp.weight_decay)
        if bufs is not None:
            g = bufs[k].copy_(g) if first else bufs[k].mul_(hp.momentum).add_(g)
        w.add_(g, alpha=-hp.lr)


@dataclass(frozen=True)
class _Columns:
    """Per-client SGD settings of a group (group order), as ``(clients,)`` float tensors."""

    values: dict[str, Tensor]

    def bound(self, ps: list[Tensor]) -> list[dict[str, Tensor]]:
        """Per parameter, each setting viewed to broadcast over the ``a`` live clients."""
        a = ps[0].shape[0]
        return [
            {k: v[:a].view(a, *([1] * (p.dim() - 1))) for k, v in self.values.items()} for p in ps
        ]


def _sgd_columns(
    ps: list[Tensor],
    grads: list[Tensor],
    anchors: list[Tensor],
    bufs: list[Tensor] | None,
    cols: list[dict[str, Tensor]],
    first: bool,
) -> None:
    """:func:`_sgd` with per-client settings (stacked anchors, one row per client)."""
    for k, (w, g) in enumerate(zip(ps, grads, strict=True)):
        c = cols[k]
        g.addcmul_(w - anchors[k], c["mu"]).addcmul_(w, c["weight_decay"])
        if bufs is not None:
            g = bufs[k].copy_(g) if first else bufs[k].mul_(c["momentum"]).add_(g)
        w.addcmul_(g, c["lr"], value=-1.0)


def _run_group(
    grad_fn: GradFn,
    anchors: list[Tensor],
    x: Tensor,
    y: Tensor,
    sched: Schedule,
    hp: ClientConfig,
    columns: _Columns | None = None,
) -> _GroupRun:
    """Step the group's clients together until each has taken its steps (or a loss blows up).

    With ``columns`` (per-client settings) ``anchors`` are stacked, one row per client, and
    a client whose loss blows up does not stop the others (each row is its own run)."""
    size, batch = sched.active[0], hp.batch_size
    if columns is None:
        ps = [a.expand(size, *a.shape).clone() for a in anchors]
        momentum = bool(hp.momentum)
    else:
        ps = [a.clone() for a in anchors]
        momentum = bool(columns.values["momentum"].any())
    bufs = [torch.empty_like(p) for p in ps] if momentum else None
    logp = torch.zeros(sched.starts[-1], batch, dtype=x.dtype)
    per_chunk = max(1, _GATHER_BUDGET // (batch * max(1, math.prod(x.shape[1:]))))
    chunk_start = chunk_end = checked = bound = 0
    chunk: tuple[Tensor, ...] = ()
    live, live_bufs, live_anchors, step = ps, bufs, anchors, None
    cols: list[dict[str, Tensor]] = []
    scratch: dict[int, Tensor] = {}
    steps_run = len(sched.active)
    for s, (a, start) in enumerate(zip(sched.active, sched.starts, strict=False)):
        if start + a > chunk_end:
            chunk_start = start
            last = np.searchsorted(sched.starts, start + per_chunk, side="right") - 1
            chunk_end = sched.starts[max(int(last), s + 1)]
            span = slice(chunk_start, chunk_end)
            chunk = grad_fn.chunk(x, y, sched.rows[span], sched.weight[span])
        if a != bound:  # views and buffers for this many active clients
            live = [p[:a] for p in ps]
            live_bufs = None if bufs is None else [b[:a] for b in bufs]
            if columns is not None:
                live_anchors, cols = [t[:a] for t in anchors], columns.bound(live)
            step, bound = grad_fn.bind(live, batch, scratch), a
        lo, hi = start - chunk_start, start + a
        assert step is not None
        grads = step(*[t[lo : lo + a] for t in chunk], logp[start:hi])
        if columns is None:
            _sgd(live, grads, anchors, live_bufs, hp, s == 0)
        else:
            _sgd_columns(live, grads, live_anchors, live_bufs, cols, s == 0)
            continue
        if (s + 1) % _CHECK_EVERY == 0:
            if not bool(torch.isfinite(logp[checked:hi]).all()):
                steps_run = s + 1
                break
            checked = hi
    return _GroupRun(ps, logp, steps_run)


def _group_updates(
    run: _GroupRun,
    deltas: list[Tensor],
    sched: Schedule,
    keys: list[tuple[str, int]],
    n: np.ndarray,
) -> list[ClientUpdate]:
    """Per-client updates of a group, in group order, as the reference would report them;
    ``deltas`` are the group's stacked deltas in the model's layout."""
    size = sched.active[0]
    done = sched.starts[run.steps_run]
    logp = run.logp[:done].double().numpy()
    real = sched.real[:done]
    pc, pstep = sched.pair_client[:done], sched.pair_step[:done]
    bad = ~np.isfinite(np.where(real, logp, 0.0)).all(axis=1)
    first_bad = np.full(size, np.iinfo(np.int64).max)
    np.minimum.at(first_bad, pc[bad], pstep[bad])
    counted = pstep <= first_bad[pc]
    loss_sum = np.bincount(pc[counted], -(logp * real)[counted].sum(axis=1), minlength=size)
    rows = np.bincount(pc[counted], real[counted].sum(axis=1), minlength=size)
    steps = np.minimum(first_bad, np.bincount(pc, minlength=size))
    finite = first_bad == np.iinfo(np.int64).max
    for p in run.params:  # amax/amin propagate NaN and are much faster than isfinite
        flat = p.flatten(1)
        finite &= (torch.isfinite(flat.amax(1)) & torch.isfinite(flat.amin(1))).numpy()
    split = [(k, deltas[j].unbind(0)) for k, j in keys]
    train_loss = np.divide(loss_sum, rows, out=np.zeros(size), where=rows > 0).tolist()
    return [
        ClientUpdate({k: d[i] for k, d in split}, num, loss, stepped, ok)
        for i, (num, loss, stepped, ok) in enumerate(
            zip(n.tolist(), train_loss, steps.tolist(), finite.tolist(), strict=True)
        )
    ]


def train_cohort_fast(
    model: nn.Module,
    params: Params,
    dataset: FederatedDataset,
    cohort: np.ndarray,
    hp: ClientConfig,
    seed: int,
    round_: int,
) -> list[ClientUpdate]:
    """Train the cohort's clients together; same updates as ``train_cohort_reference``.

    A :class:`~fedhpo.sim.cohort.CohortTrainer`. Falls back to the reference loop (warning
    once per model class) for models neither fast path handles.
    """
    if len(cohort) == 0:
        return []
    kernel = kernel_for(model)
    usable = (
        kernel.grad_fn is not None
        and set(params) == set(kernel.names)
        and all(p.dtype == dataset.x.dtype for p in params.values())
        and (kernel.flattens or len(dataset.feature_shape) == 1)
    )
    if not usable:
        return train_cohort_reference(model, params, dataset, cohort, hp, seed, round_)
    assert kernel.grad_fn is not None
    anchors = [params[k].detach() for k in kernel.names]
    keys = [(k, kernel.names.index(k)) for k in params]  # deltas keyed in the caller's order
    try:
        updates = _train(kernel.grad_fn, anchors, keys, dataset, cohort, hp, seed, round_)
    except Exception as exc:  # a model torch.func cannot vectorize: use the reference loop
        if kernel.kind != "vmap":
            raise
        warn_once(model, f"cannot be vectorized with torch.func ({type(exc).__name__}: {exc})")
        KERNELS[model] = Kernel("reference", None)
        return train_cohort_reference(model, params, dataset, cohort, hp, seed, round_)
    return updates


def train_cohort_stacked(
    model: nn.Module,
    starts: Params,
    dataset: FederatedDataset,
    cohort: np.ndarray,
    hp: ClientConfig,
    per_client: dict[str, np.ndarray],
    seed: int,
    round_: int,
) -> list[ClientUpdate]:
    """Train clients that each start from their own parameters with their own SGD settings.

    ``starts[k]`` stacks one row per cohort position (``(len(cohort), *shape)``); a client id
    may appear several times (one federation per row, e.g. several configs run together).
    ``per_client`` gives each of :data:`PER_CLIENT_HP` per position; ``hp`` gives the rest
    (batch size, local epochs or steps), shared because it sets the batch schedule. Each
    client draws the same permutations as in :func:`train_cohort_fast`, and a client whose
    loss blows up stops no other (its update is flagged ``finite=False``). Needs a model the
    fast path vectorizes (``fast_path(model) != "reference"``).
    """
    kernel = kernel_for(model)
    if kernel.grad_fn is None or set(starts) != set(kernel.names):
        raise ValueError(f"train_cohort_stacked needs a vectorizable model, got {kernel.kind}")
    if len(cohort) == 0:
        return []
    missing = set(PER_CLIENT_HP) - set(per_client)
    if missing:
        raise ValueError(f"per_client lacks {sorted(missing)}")
    anchors = [starts[k].detach() for k in kernel.names]
    keys = [(k, kernel.names.index(k)) for k in starts]
    dtype = dataset.x.dtype
    values = {k: torch.as_tensor(np.asarray(per_client[k]), dtype=dtype) for k in PER_CLIENT_HP}
    return _train(kernel.grad_fn, anchors, keys, dataset, cohort, hp, seed, round_, values)


def _train(
    grad_fn: GradFn,
    anchors: list[Tensor],
    keys: list[tuple[str, int]],
    dataset: FederatedDataset,
    cohort: np.ndarray,
    hp: ClientConfig,
    seed: int,
    round_: int,
    per_client: dict[str, Tensor] | None = None,
) -> list[ClientUpdate]:
    """Draw, bucket (sort by steps, cut into groups that fit the memory budget), train.

    ``anchors`` are in the kernel's order; ``keys`` maps each delta key, in the order the
    updates list them, to its position there. With ``per_client`` settings (cohort order) the
    anchors are stacked per cohort position and a diverged client stops no other."""
    stacked = per_client is not None
    draws = draw_permutations(dataset, cohort, hp, seed, round_)
    order = np.argsort(-draws.steps, kind="stable")
    order = order[draws.steps[order] > 0]
    one = [a[0] for a in anchors] if stacked else anchors
    per_group = max(1, _PARAM_BUDGET // max(1, sum(a.numel() for a in one)))
    first_row = dataset.offsets[cohort]
    zeros = {k: torch.zeros_like(one[j]) for k, j in keys}
    updates = [ClientUpdate(zeros, 0, 0.0, 0, True)] * len(cohort)
    internal = grad_fn.to_internal(anchors)
    for lo in range(0, len(order), per_group):
        group = order[lo : lo + per_group]
        sched = build_schedule(draws, group, first_row[group], hp.batch_size, dataset.x.dtype)
        if per_client is None:
            run = _run_group(grad_fn, internal, dataset.x, dataset.y, sched, hp)
            start = anchors
        else:
            index = torch.from_numpy(group)
            cols = _Columns({k: v[index] for k, v in per_client.items()})
            rows = [t.index_select(0, index) for t in internal]
            run = _run_group(grad_fn, rows, dataset.x, dataset.y, sched, hp, cols)
            start = [a.index_select(0, index) for a in anchors]
        final = grad_fn.from_internal(run.params)
        deltas = [
            torch.sub(p, a, out=p.new_empty(p.shape)) for p, a in zip(final, start, strict=True)
        ]
        done = _group_updates(run, deltas, sched, keys, draws.n[group])
        for pos, update in zip(group.tolist(), done, strict=True):
            updates[pos] = update
        if run.steps_run < len(sched.active):
            break  # diverged: the engine ends the run, so skip the remaining groups
    if stacked:
        return updates
    for i, update in enumerate(updates):
        if not update.finite:
            return updates[: i + 1]
    return updates
