"""The fast trainer: all clients of a dispatch step together (batched matmuls or vmap).

:data:`FAST` trains a :class:`~fedhpo.sim.work.Work` to the same
:class:`~fedhpo.sim.work.WorkResult` as :data:`fedhpo.sim.cohort.REFERENCE` (to float
rounding): each client draws ``torch.randperm(n, generator=...)`` per pass from
``torch_generator(seed, STREAM_CLIENT, stream, client)`` exactly as
:func:`~fedhpo.sim.client.local_update` does, and takes the same SGD steps (momentum, weight
decay, FedProx ``mu``), each client with its own step budget, epochs or steps, learning rate,
momentum, weight decay and ``mu``. Only ``batch_size`` must be shared by one call
(:func:`~fedhpo.sim.work.train_work` splits a dispatch by it). Uniform hyperparameters take
the scalar route, so a lock-step round computes exactly what it did before per-client values.

How: clients are sorted by their number of local steps (longest first), so at step ``s`` the
clients still training are a prefix of that order and finished ones simply drop out of the
batch: heavy-tailed client sizes cost no padding of whole clients. A short last batch is
padded with copies of one of its rows weighted 0, so its loss is the mean over its real rows.
All batch indices of a dispatch are built up front as one packed ``(steps x active clients,
width)`` matrix (width: the batch size, or the largest client's rows if smaller, so a batch
larger than every client costs their rows, not its size), and the rows are gathered with one
``index_select`` per chunk of steps; the Python work per step is a fixed number of tensor
operations, whatever the number of clients.

Models that are stacks of ``nn.Linear`` with ``ReLU`` between (optionally after
``nn.Flatten``: the built-in logreg and mlp, recognised by module type, not by name) get a
hand-derived forward/backward with ``torch.bmm`` (:class:`_LinearStack`); their narrow
steps, where few clients are left (:func:`narrow_from`), run the same maths in numpy
(:mod:`fedhpo.sim._fast_numpy`), about 3x faster per step. Other models without buffers or
convolutions use ``torch.func.vmap(grad(functional_call))``, which assumes rows are
processed independently (no batch statistics), in train mode. The rest (e.g. the built-in
cnn: vmapped convolutions were slower than the loop on CPU, and from its first call a model
with a random op such as dropout, which vmap refuses) fall back to the reference loop, with
one warning per model class; so does a ClientConfig with a field this module does not
implement.

On divergence (a non-finite loss or parameter) the whole dispatch stops within a few steps;
the diverged clients are flagged ``finite=False`` and the other rows are partial; the engine
discards the dispatch anyway.
"""

from __future__ import annotations

import contextlib
import math
import warnings
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
from fedhpo.sim._fast_numpy import NARROW_ROWS, Layers, NarrowSteps
from fedhpo.sim._fast_schedule import Schedule, build_schedule, draw_permutations
from fedhpo.sim._fast_sgd import RATES, Rates, sgd
from fedhpo.sim.client import ClientUpdate, Params, modes
from fedhpo.sim.cohort import train_reference
from fedhpo.sim.data import FederatedDataset
from fedhpo.sim.work import CLIENT_FIELDS, Trainer, Work, WorkResult

__all__ = ["FAST", "NUMERICS", "PER_CLIENT_HP", "fast_path", "train_cohort_stacked", "train_fast"]

_PARAM_BUDGET = 1 << 25
"""Most parameter floats held per copy (params, grads, momentum): caps clients per group."""
_GATHER_BUDGET = 1 << 22
"""Most input floats gathered at once (one chunk of steps)."""
_CHECK_EVERY = 8
"""Steps between checks for a non-finite loss (each check is a synchronising reduction)."""

_IMPLEMENTED = frozenset({*RATES, "local_epochs", "local_steps", "batch_size"})
"""The ClientConfig fields this trainer implements; for any other it uses the reference."""
_MISSING = sorted(set(CLIENT_FIELDS) - _IMPLEMENTED)


@dataclass
class _GroupRun:
    params: list[Tensor]
    logp: Tensor
    steps_run: int


def _run_group(
    grad_fn: GradFn,
    anchors: list[Tensor],
    x: Tensor,
    y: Tensor,
    sched: Schedule,
    rates: Rates,
    stacked: bool,
    narrow_from: int,
) -> _GroupRun:
    """Step the group's clients together until each has taken its steps (or a loss blows up).

    ``stacked``: ``anchors`` hold one row per client of the group, and a client whose loss
    blows up does not stop the others (each row is its own run). ``narrow_from``: the step
    from which a Linear(+ReLU) stack's steps run in numpy (:func:`narrow_from`)."""
    size = sched.active[0]
    if stacked:
        ps = [a.clone() for a in anchors]
    else:
        ps = [a.expand(size, *a.shape).clone() for a in anchors]
    bufs = [torch.empty_like(p) for p in ps] if rates.any("momentum") else None
    width = sched.width
    logp = torch.zeros(sched.starts[-1], width, dtype=x.dtype)
    per_chunk = max(1, _GATHER_BUDGET // (width * max(1, math.prod(x.shape[1:]))))
    chunk_start = chunk_end = checked = bound = 0
    chunk: tuple[Tensor, ...] = ()
    live, live_bufs, live_rates, live_anchors, step = ps, bufs, rates, anchors, None
    scratch: dict[int, Tensor] = {}
    layers: Layers | None = getattr(grad_fn, "layers", None)
    wide = len(sched.active)  # steps from here on are narrow: numpy takes them
    if layers is not None:
        wide = min(narrow_from, wide)
    steps_run = len(sched.active)
    for s, (a, start) in enumerate(zip(sched.active[:wide], sched.starts, strict=False)):
        if start + a > chunk_end:
            chunk_start = start
            last = np.searchsorted(sched.starts, start + per_chunk, side="right") - 1
            chunk_end = sched.starts[max(int(last), s + 1)]
            span = slice(chunk_start, chunk_end)
            chunk = grad_fn.chunk(x, y, sched.rows[span], sched.weight[span])
        if a != bound:  # views and buffers for this many active clients
            live = [p[:a] for p in ps]
            live_bufs = None if bufs is None else [b[:a] for b in bufs]
            live_rates = rates.head(a)
            live_anchors = [t[:a] for t in anchors] if stacked else anchors
            step, bound = grad_fn.bind(live, width, scratch), a
        lo, hi = start - chunk_start, start + a
        assert step is not None
        grads = step(*[t[lo : lo + a] for t in chunk], logp[start:hi])
        sgd(live, grads, live_anchors, live_bufs, live_rates, s == 0)
        if not stacked and (s + 1) % _CHECK_EVERY == 0:
            if not bool(torch.isfinite(logp[checked:hi]).all()):
                steps_run = s + 1
                break
            checked = hi
    else:
        if wide < len(sched.active):  # the narrow rest in numpy, on the same tensors
            assert layers is not None
            every = 0 if stacked else _CHECK_EVERY
            if every and not bool(torch.isfinite(logp[checked : sched.starts[wide]]).all()):
                return _GroupRun(ps, logp, wide)
            narrow = NarrowSteps(layers, ps, bufs, anchors, x, y, sched, logp, rates, per_chunk)
            steps_run = narrow.run(wide, every)
    return _GroupRun(ps, logp, steps_run)


def _group_stats(run: _GroupRun, sched: Schedule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(steps, losses, finite)`` of the group's clients, in group order, as the reference
    would report them."""
    size = sched.active[0]
    done = sched.starts[run.steps_run]
    logp = run.logp[:done].double().numpy()
    real = sched.real[:done]
    pc, pstep = sched.pair_client[:done], sched.pair_step[:done]
    # padding repeats a batch's first row: mask it (a -inf there times 0 would be nan)
    logp = np.where(real, logp, 0.0)
    bad = ~np.isfinite(logp).all(axis=1)
    first_bad = np.full(size, np.iinfo(np.int64).max)
    np.minimum.at(first_bad, pc[bad], pstep[bad])
    counted = pstep <= first_bad[pc]
    loss_sum = np.bincount(pc[counted], -logp[counted].sum(axis=1), minlength=size)
    rows = np.bincount(pc[counted], real[counted].sum(axis=1), minlength=size)
    steps = np.minimum(first_bad, np.bincount(pc, minlength=size))
    finite = first_bad == np.iinfo(np.int64).max
    for p in run.params:  # amax/amin propagate NaN and are much faster than isfinite
        flat = p.flatten(1)
        finite &= (torch.isfinite(flat.amax(1)) & torch.isfinite(flat.amin(1))).numpy()
    losses = np.divide(loss_sum, rows, out=np.zeros(size), where=rows > 0)
    return steps.astype(np.int64), losses, finite


def train_fast(model: nn.Module, dataset: FederatedDataset, work: Work) -> WorkResult:
    """Train ``work``'s clients together; the same result as the reference trainer.

    Falls back to the reference loop (warning once per model class) for models neither
    fast path handles. ``batch_size`` must be the same for all clients.
    """
    if len(work) == 0:
        return WorkResult.empty(work)
    if "batch_size" in work.varying():
        raise ValueError("the fast trainer needs one batch_size per call (use train_work)")
    kernel = kernel_for(model)
    params = work.params
    usable = (
        kernel.grad_fn is not None
        and not _MISSING
        and set(params) == set(kernel.names)
        and all(p.dtype == dataset.x.dtype for p in params.values())
        and (kernel.flattens or len(dataset.feature_shape) == 1)
    )
    if _MISSING:
        warnings.warn(
            f"fedhpo fast trainer: ClientConfig fields {_MISSING} are not implemented here; "
            "training with the reference loop",
            RuntimeWarning,
            stacklevel=2,
        )
    if not usable:
        return train_reference(model, dataset, work)
    assert kernel.grad_fn is not None
    # vmap calls the model: in train mode, as the reference does (the linear kernel never)
    mode = modes(model, training=True) if kernel.kind == "vmap" else contextlib.nullcontext()
    try:
        with mode:
            return _train(kernel.grad_fn, list(kernel.names), dataset, work)
    except Exception as exc:  # a model torch.func cannot vectorize: use the reference loop
        if kernel.kind != "vmap":
            raise
        warn_once(model, f"cannot be vectorized with torch.func ({type(exc).__name__}: {exc})")
        KERNELS[model] = Kernel("reference", None)
        return train_reference(model, dataset, work)


def _train(grad_fn: GradFn, names: list[str], dataset: FederatedDataset, work: Work) -> WorkResult:
    """Draw, bucket (sort by steps, cut into groups that fit the memory budget), train.

    ``names`` are the parameters in the kernel's order; the result keys them in the order of
    ``work.params``."""
    anchors = [work.params[k].detach() for k in names]
    stacked = work.stacked
    draws = draw_permutations(dataset, work)
    order = np.argsort(-draws.steps, kind="stable")
    order = order[draws.steps[order] > 0]
    one = [a[0] for a in anchors] if stacked else anchors
    per_group = max(1, _PARAM_BUDGET // max(1, sum(a.numel() for a in one)))
    first_row = dataset.offsets[work.clients]
    out = _blank_result(work, draws.n, every_row=len(order) == len(work))
    internal = grad_fn.to_internal(anchors)
    batch = work.hp.batch_size
    # the route of a step is set by the batch size, not the schedule's width: a batch larger
    # than every client takes the route (and the rounding) it always took
    narrow = narrow_from(work.clients, draws.steps, batch)
    for lo in range(0, len(order), per_group):
        group = order[lo : lo + per_group]
        sched = build_schedule(draws, group, first_row[group], batch, dataset.x.dtype)
        rows = internal
        if stacked:
            rows = [t.index_select(0, torch.from_numpy(group)) for t in internal]
        rates = Rates.of(work, group, [t[0] for t in rows] if stacked else rows)
        run = _run_group(grad_fn, rows, dataset.x, dataset.y, sched, rates, stacked, narrow)
        out.steps[group], out.losses[group], out.finite[group] = _group_stats(run, sched)
        # deltas: subtract in place in the kernel's (contiguous) layout, the same numbers as
        # in the model's layout; one copy then puts them in work order and the model layout
        for p, a in zip(run.params, rows, strict=True):
            p.sub_(a)
        index = torch.from_numpy(group)
        for k, d in zip(names, grad_fn.from_internal(run.params), strict=True):
            out.deltas[k].index_copy_(0, index, d)
        if run.steps_run < len(sched.active):  # diverged: the engine ends the run, so skip
            for d in out.deltas.values():  # the remaining groups (their deltas stay zero)
                d[torch.from_numpy(order[lo + per_group :])] = 0
            break
    return out


def narrow_from(clients: np.ndarray, steps: np.ndarray, batch: int) -> int:
    """The first local step from which a Linear(+ReLU) stack trains in numpy: at most
    ``NARROW_ROWS // batch`` distinct clients are still training there.

    Counted in distinct clients rather than rows: :func:`~fedhpo.sim.batch.run_batch` trains
    the same cohort once per config in one call, so a run takes each step the same route, and
    gets the same numbers, alone or beside any number of others."""
    ids, which = np.unique(clients, return_inverse=True)
    most = np.zeros(len(ids), dtype=np.int64)
    np.maximum.at(most, which, steps)
    room = NARROW_ROWS // batch
    return 0 if len(ids) <= room else int(-np.sort(-most)[room])


def _blank_result(work: Work, n: np.ndarray, every_row: bool) -> WorkResult:
    """The result :func:`_train` fills group by group: no steps, and zero deltas for the
    clients that do not train (not even filled when ``every_row`` client trains)."""
    k = len(work)
    alloc = torch.empty if every_row else torch.zeros
    return WorkResult(
        clients=work.clients.copy(),
        deltas={
            name: alloc((k, *p.shape[work.stacked :]), dtype=p.dtype)
            for name, p in work.params.items()
        },
        num_samples=n.copy(),
        steps=np.zeros(k, dtype=np.int64),
        losses=np.zeros(k),
        finite=np.ones(k, dtype=bool),
    )


#: The vectorized trainer: varies every per-step option per client, not ``batch_size``.
FAST = Trainer("fast", train_fast, _IMPLEMENTED - {"batch_size"})

NUMERICS = 2
"""The fast trainer's rounding, numbered: bumped by a deliberate change that makes the same
run round differently, so that results cached under the old number are recomputed (2: the
narrow steps of Linear(+ReLU) stacks in numpy, 2026-12-07)."""

PER_CLIENT_HP = RATES
"""Client settings :func:`train_cohort_stacked` takes per client (the rest set the schedule)."""


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
    ``per_client`` gives each of :data:`PER_CLIENT_HP` per position; ``hp`` the rest. A
    client whose loss blows up stops no other. A model the fast path turns out not to
    vectorize (``torch.func`` fails on a random op such as dropout) trains row by row with
    the reference loop, as :func:`train_fast` falls back for it.
    """
    names = {n for n, _ in model.named_parameters()}
    if set(starts) != names:
        raise ValueError(f"starts must hold the model's parameters {sorted(names)}")
    missing = set(PER_CLIENT_HP) - set(per_client)
    if missing:
        raise ValueError(f"per_client lacks {sorted(missing)}")
    overrides = {k: tuple(np.asarray(per_client[k]).tolist()) for k in PER_CLIENT_HP}
    k = len(cohort)
    work = Work(cohort, starts, hp, seed, np.full(k, round_), 0, None, overrides, stacked=True)
    return train_fast(model, dataset, work).updates() if k else []
