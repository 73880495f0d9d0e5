"""The fast cohort trainer: all sampled clients of a round step together (batched matmuls/vmap).

:func:`train_cohort_fast` returns the same :class:`~fedhpo.sim.client.ClientUpdate` list as
:func:`fedhpo.sim.engine.train_cohort_reference` (to float rounding): each client draws
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
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn

from fedhpo.config import ClientConfig
from fedhpo.sim.client import ClientUpdate, Params
from fedhpo.sim.data import FederatedDataset
from fedhpo.sim.sampling import STREAM_CLIENT, derive_seed

__all__ = ["fast_path", "train_cohort_fast"]

_PARAM_BUDGET = 1 << 25
"""Most parameter floats held per copy (params, grads, momentum): caps clients per group."""
_GATHER_BUDGET = 1 << 22
"""Most input floats gathered at once (one chunk of steps)."""
_CHECK_EVERY = 8
"""Steps between checks for a non-finite loss (each check is a synchronising reduction)."""

# --------------------------------------------------------------------------- schedule


@dataclass(frozen=True)
class _Draws:
    """Every client's local permutations (cohort order), concatenated pass after pass."""

    n: np.ndarray
    """Training rows per client."""
    batches: np.ndarray
    """Batches per pass: ceil(n / batch_size)."""
    steps: np.ndarray
    """SGD steps per client."""
    perms: list[Tensor]
    """Per client, its passes' ``randperm(n)`` concatenated (local row numbers)."""


def _draw(
    dataset: FederatedDataset, cohort: np.ndarray, hp: ClientConfig, seed: int, round_: int
) -> _Draws:
    """Draw each client's permutations from its own generator, one ``randperm`` per pass."""
    n = dataset.n_train[cohort].astype(np.int64)
    batches = -(-n // hp.batch_size)
    if hp.local_steps is not None:
        steps = np.where(n > 0, hp.local_steps, 0)
    else:
        steps = hp.local_epochs * batches
    passes = -(-steps // np.maximum(batches, 1))
    perms = []
    seeds = _client_seeds(seed, round_, cohort)
    gen = torch.Generator()  # re-seeding fully resets it: as good as a fresh one per client
    for s, rows, count in zip(seeds, n.tolist(), passes.tolist(), strict=True):
        gen.manual_seed(s)
        drawn = [torch.randperm(rows, generator=gen) for _ in range(count)]
        perms.append(drawn[0] if count == 1 else torch.cat(drawn) if drawn else torch.empty(0))
    return _Draws(n, batches, steps.astype(np.int64), perms)


# numpy.random.SeedSequence's constants (numpy/random/bit_generator.pyx).
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R, _MASK = 0xCA01F9DD, 0x4973F715, 0xFFFFFFFF


def _words(value: int) -> list[int]:
    """An integer as SeedSequence reads it: 32-bit words, least significant first."""
    words = [value & _MASK]
    while value > _MASK:
        value >>= 32
        words.append(value & _MASK)
    return words


def _seed_sequence_seeds(entropy: list[np.ndarray]) -> np.ndarray:
    """``SeedSequence(words).generate_state(1, uint64)[0] >> 1`` for columns of 32-bit words.

    numpy's hash written out on uint64 arrays, so a whole cohort's generator seeds cost a few
    array operations instead of one ``SeedSequence`` (about 10 us) per client.
    """
    const = _INIT_A

    def hashmix(value: np.ndarray) -> np.ndarray:
        nonlocal const
        value = value ^ np.uint64(const)
        const = (const * _MULT_A) & _MASK
        value = (value * np.uint64(const)) & np.uint64(_MASK)
        return value ^ (value >> np.uint64(16))

    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out: np.ndarray = x * np.uint64(_MIX_L) - y * np.uint64(_MIX_R)
        out &= np.uint64(_MASK)
        return out ^ (out >> np.uint64(16))

    zero = np.zeros_like(entropy[0])
    pool = [hashmix(entropy[i] if i < len(entropy) else zero) for i in range(4)]
    for src in range(4):
        for dst in range(4):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    for word in entropy[4:]:
        for dst in range(4):
            pool[dst] = mix(pool[dst], hashmix(word))
    const, state = _INIT_B, []
    for word in pool[:2]:
        word = word ^ np.uint64(const)
        const = (const * _MULT_B) & _MASK
        word = (word * np.uint64(const)) & np.uint64(_MASK)
        state.append(word ^ (word >> np.uint64(16)))
    return (state[0] | (state[1] << np.uint64(32))) >> np.uint64(1)


def _client_seeds(seed: int, round_: int, cohort: np.ndarray) -> list[int]:
    """``derive_seed(seed, STREAM_CLIENT, round_, c)`` for every client ``c`` of ``cohort``.

    Vectorized; checked against :func:`~fedhpo.sim.sampling.derive_seed` on the first client
    (the loop is used instead should they ever disagree).
    """
    clients = cohort.astype(np.uint64)
    prefix = [w for v in (seed, STREAM_CLIENT, round_) for w in _words(int(v))]
    seeds: list[int] = []
    if len(cohort) and int(cohort.max()) <= _MASK:
        cols = [np.full(len(cohort), w, dtype=np.uint64) for w in prefix] + [clients]
        seeds = _seed_sequence_seeds(cols).tolist()
    if not seeds or seeds[0] != derive_seed(seed, STREAM_CLIENT, round_, int(cohort[0])):
        seeds = [derive_seed(seed, STREAM_CLIENT, round_, c) for c in cohort.tolist()]
    return seeds


@dataclass(frozen=True)
class _Schedule:
    """The batches of a group of clients sorted by steps (descending), packed step by step.

    Step ``s`` uses pair rows ``starts[s] : starts[s] + active[s]``, one per client still
    training (clients ``0 .. active[s]-1`` of the group).
    """

    active: list[int]
    starts: list[int]
    rows: Tensor
    """(pairs, batch) int64 global row indices; padding repeats the batch's first row."""
    weight: Tensor
    """(pairs, batch): 1 / batch length for real rows, 0 for padding."""
    real: np.ndarray
    """(pairs, batch) bool: real rows."""
    pair_step: np.ndarray
    pair_client: np.ndarray


def _schedule(
    draws: _Draws, group: np.ndarray, first_row: np.ndarray, batch: int, dtype: torch.dtype
) -> _Schedule:
    """Pack the batches of ``group`` (cohort positions sorted by steps, descending);
    ``first_row[i]`` is the global row of the first training row of ``group[i]``."""
    n, nb, steps = draws.n[group], draws.batches[group], draws.steps[group]
    active = np.searchsorted(-steps, -np.arange(int(steps[0])), side="left")
    starts = np.concatenate(([0], np.cumsum(active)))
    pair_step = np.repeat(np.arange(len(active)), active)
    pair_client = np.arange(int(starts[-1])) - np.repeat(starts[:-1], active)
    perms = [draws.perms[p] for p in group.tolist()]
    base = np.concatenate(([0], np.cumsum([len(p) for p in perms])[:-1])).astype(np.int64)
    flat = torch.cat(perms).numpy()
    pn, pnb = n[pair_client], nb[pair_client]
    first = (pair_step % pnb) * batch
    pos = first[:, None] + np.arange(batch)[None, :]
    real = pos < pn[:, None]
    pos = np.where(real, pos, first[:, None])
    rows = flat[(base[pair_client] + (pair_step // pnb) * pn)[:, None] + pos]
    rows += first_row[pair_client][:, None]
    count = np.minimum(batch, pn - first)
    return _Schedule(
        active=active.tolist(),
        starts=starts.tolist(),
        rows=torch.from_numpy(rows),
        weight=torch.from_numpy(real / count[:, None]).to(dtype),
        real=real,
        pair_step=pair_step,
        pair_client=pair_client,
    )


# --------------------------------------------------------------------------- kernels


StepFn = Callable[..., list[Tensor]]
"""``step(*chunk slices, logp_out) -> grads``: one SGD step's gradients for the bound clients."""


class _GradFn(Protocol):
    """Per-step gradients of ``a`` clients at once, in the kernel's own parameter layout.

    Call order per group: ``to_internal`` (anchors); per chunk of steps ``chunk``; whenever
    the number of active clients changes ``bind``; per step the bound function, on the
    ``[lo:lo + a]`` slices of the chunk's tensors and the step's ``logp_out`` rows.
    """

    def to_internal(self, tensors: list[Tensor]) -> list[Tensor]:
        """Parameters (single or stacked) from the model's layout to the kernel's."""
        ...

    def from_internal(self, tensors: list[Tensor]) -> list[Tensor]:
        """Stacked parameters from the kernel's layout back to the model's (may be views)."""
        ...

    def chunk(self, x: Tensor, y: Tensor, rows: Tensor, weight: Tensor) -> tuple[Tensor, ...]:
        """Per-pair step inputs for pairs ``rows`` ``(pairs, batch)`` with row ``weight``."""
        ...

    def bind(self, ps: list[Tensor], batch: int, scratch: dict[int, Tensor]) -> StepFn:
        """The step function for the stacked parameters ``ps`` ``(a, *shape)``; ``scratch``
        keeps buffers for the group's later, smaller binds (``a`` only decreases). It returns
        the gradient of each client's weighted cross-entropy (fresh tensors, free to modify)
        and writes each row's ``log p(y)`` into ``logp_out`` ``(a, batch)``."""
        ...


class _LinearStack:
    """Hand-derived forward/backward of Linear (+ReLU) stacks with batched matmuls.

    Each layer is held as one ``(in [+1], out)`` matrix: the weight transposed (the layout
    ``bmm`` is fastest with here) with the bias as an extra last row, matched by a column of
    ones on the layer's input; so a layer costs one matmul forward and one for its gradient.
    The logits are computed transposed, ``(classes, batch)``, because ``log_softmax`` over a
    short last dimension is very slow on CPU. Views are made once per :meth:`bind`, so a step
    is about a dozen tensor operations.
    """

    def __init__(self, layers: list[tuple[str, str | None]], names: list[str], classes: int):
        self.index = [(names.index(w), None if b is None else names.index(b)) for w, b in layers]
        self.count = len(names)
        self.classes = classes

    def to_internal(self, tensors: list[Tensor]) -> list[Tensor]:
        out = []
        for wi, bi in self.index:
            w = tensors[wi].transpose(-1, -2)
            out.append(
                w.contiguous() if bi is None else torch.cat([w, tensors[bi].unsqueeze(-2)], -2)
            )
        return out

    def from_internal(self, tensors: list[Tensor]) -> list[Tensor]:
        out: list[Tensor] = [tensors[0]] * self.count
        for (wi, bi), t in zip(self.index, tensors, strict=True):
            if bi is not None:
                out[bi], t = t[..., -1, :], t[..., :-1, :]
            out[wi] = t.transpose(-1, -2)
        return out

    def chunk(self, x: Tensor, y: Tensor, rows: Tensor, weight: Tensor) -> tuple[Tensor, ...]:
        """(inputs (pairs, batch, in [+1]), labels, weights (pairs, 1, batch), and
        ``-weight`` at each row's label (pairs, classes, batch))."""
        pairs, batch = rows.shape
        flat, x = rows.reshape(-1), x.flatten(1)
        if self.index[0][1] is None:
            xs = x.index_select(0, flat)
        else:  # gather straight into a buffer whose last column is ones
            xs = torch.empty(len(flat), x.shape[1] + 1, dtype=x.dtype)
            xs[:, -1] = 1.0
            torch.index_select(x, 0, flat, out=xs[:, :-1])
        y3 = y.index_select(0, flat).view(pairs, 1, batch)
        w3 = weight.unsqueeze(1)
        target = torch.zeros(pairs, self.classes, batch, dtype=weight.dtype)
        return xs.view(pairs, batch, -1), y3, w3, target.scatter_(1, y3, -w3)

    def bind(self, ps: list[Tensor], batch: int, scratch: dict[int, Tensor]) -> StepFn:
        a, last = ps[0].shape[0], len(ps) - 1
        widths = [p.shape[2] for p in ps]
        for i in range(last):  # ReLU outputs (a, batch, width [+1]), the extra column ones
            if i not in scratch:
                ones = self.index[i + 1][1] is not None
                scratch[i] = torch.ones(a, batch, widths[i] + ones, dtype=ps[i].dtype)
        hidden = [scratch[i][:a] for i in range(last)]
        relu_out = [h[:, :, : widths[i]] for i, h in enumerate(hidden)]
        hidden_t = [h.transpose(1, 2) for h in hidden]
        w_last_t = ps[last].transpose(1, 2)
        # backward through layer i+1's weight (without its bias row) into layer i's output
        w_back = [ps[i + 1][:, : widths[i]].transpose(1, 2) for i in range(last)]
        threshold_backward = torch.ops.aten.threshold_backward

        def step(x: Tensor, y3: Tensor, w3: Tensor, target: Tensor, logp_out: Tensor):
            h = x
            for i in range(last):
                torch.clamp_min(torch.bmm(h, ps[i]), 0, out=relu_out[i])
                h = hidden[i]
            h_t = hidden_t[-1] if last else x.transpose(1, 2)
            logp = torch.log_softmax(torch.bmm(w_last_t, h_t), 1)  # (a, classes, batch)
            torch.gather(logp, 1, y3, out=logp_out.unsqueeze(1))
            dz = torch.addcmul(target, logp.exp_(), w3)  # softmax - onehot, row-weighted
            grads = [dz] * len(ps)
            grads[last] = torch.bmm(dz, h).transpose(1, 2)
            if last:
                dh = torch.bmm(dz.transpose(1, 2), w_back[last - 1])  # (a, batch, width)
            for i in range(last - 1, -1, -1):
                dh = threshold_backward(dh, relu_out[i], 0)
                grads[i] = torch.bmm(hidden_t[i - 1] if i else x.transpose(1, 2), dh)
                if i:
                    dh = torch.bmm(dh, w_back[i - 1])
            return grads

        return step


class _Vmapped:
    """``torch.func.vmap`` over ``grad(functional_call)``: any buffer-free row-wise model."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        from torch.func import functional_call, grad, vmap

        module = weakref.ref(model)  # cached per model: must not keep the model alive

        def loss(p: Params, x: Tensor, y: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
            net = module()
            assert net is not None  # alive: the trainer was called with it
            logp = torch.log_softmax(functional_call(net, p, (x,)), -1)
            lp = logp.gather(1, y.unsqueeze(1)).squeeze(1)
            return -(lp * w).sum(), lp

        self.names = names
        self.fn = vmap(grad(loss, has_aux=True))

    def to_internal(self, tensors: list[Tensor]) -> list[Tensor]:
        return tensors

    def from_internal(self, tensors: list[Tensor]) -> list[Tensor]:
        return tensors

    def chunk(self, x: Tensor, y: Tensor, rows: Tensor, weight: Tensor) -> tuple[Tensor, ...]:
        flat = rows.reshape(-1)
        xs = x.index_select(0, flat)
        return xs.view(*rows.shape, *xs.shape[1:]), y.index_select(0, flat).view(rows.shape), weight

    def bind(self, ps: list[Tensor], batch: int, scratch: dict[int, Tensor]) -> StepFn:
        params = dict(zip(self.names, ps, strict=True))

        def step(x: Tensor, y: Tensor, w: Tensor, logp_out: Tensor) -> list[Tensor]:
            grads, lp = self.fn(params, x, y, w)
            logp_out.copy_(lp)
            return [grads[k] for k in self.names]

        return step


def _linear_layers(model: nn.Module) -> tuple[list[tuple[str, str | None]], bool] | None:
    """``([(weight name, bias name), ...], flattens)`` if ``model`` is an ``nn.Sequential``
    of ``[Flatten] Linear (ReLU Linear)*`` (Identity anywhere), else None."""
    if type(model) is not nn.Sequential:
        return None
    tokens: list[str] = []
    layers: list[tuple[str, str | None]] = []
    flattens = False
    for name, m in _leaves(model, ""):
        kind = type(m)
        if kind is nn.Identity:
            continue
        if kind is nn.Flatten and not tokens and (m.start_dim, m.end_dim) == (1, -1):
            flattens = True
        elif kind is nn.Linear:
            tokens.append("L")
            layers.append((f"{name}.weight", None if m.bias is None else f"{name}.bias"))
        elif kind is nn.ReLU:
            tokens.append("R")
        else:
            return None
    if not tokens or "".join(tokens) != "L" + "RL" * (len(layers) - 1):
        return None
    names = {n for pair in layers for n in pair if n is not None}
    if names != {n for n, _ in model.named_parameters()} or next(model.buffers(), None) is not None:
        return None
    return layers, flattens


def _leaves(module: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    out: list[tuple[str, nn.Module]] = []
    for name, child in module.named_children():
        path = f"{prefix}{name}"
        if type(child) is nn.Sequential:
            out += _leaves(child, path + ".")
        else:
            out.append((path, child))
    return out


@dataclass(frozen=True)
class _Kernel:
    kind: str
    """"linear", "vmap" or "reference"."""
    grad_fn: _GradFn | None
    names: tuple[str, ...] = ()
    """Parameter names in ``model.named_parameters()`` order (the kernel's order)."""
    flattens: bool = True


_KERNELS: weakref.WeakKeyDictionary[nn.Module, _Kernel] = weakref.WeakKeyDictionary()
_WARNED: set[type] = set()


def _kernel(model: nn.Module) -> _Kernel:
    kernel = _KERNELS.get(model)
    if kernel is None:
        names = [n for n, _ in model.named_parameters()]
        found = _linear_layers(model)
        if found is not None:
            classes = dict(model.named_parameters())[found[0][-1][0]].shape[0]
            stack = _LinearStack(found[0], names, classes)
            kernel = _Kernel("linear", stack, tuple(names), found[1])
        elif next(model.buffers(), None) is not None:
            _warn_once(model, "has buffers (e.g. BatchNorm statistics)")
            kernel = _Kernel("reference", None)
        elif any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules()):
            # torch.func turns per-client conv weights into grouped convolutions, which on
            # CPU ran 2.6x slower than the per-client loop for the built-in cnn.
            _warn_once(model, "has convolutions (slower under torch.func.vmap on CPU)")
            kernel = _Kernel("reference", None)
        else:
            kernel = _Kernel("vmap", _Vmapped(model, names), tuple(names))
        _KERNELS[model] = kernel
    return kernel


def _warn_once(model: nn.Module, why: str) -> None:
    cls = type(model)
    if cls not in _WARNED:
        _WARNED.add(cls)
        warnings.warn(
            f"fedhpo fast trainer: model class {cls.__module__}.{cls.__qualname__} {why}; "
            "training its clients one by one with the reference loop",
            RuntimeWarning,
            stacklevel=3,
        )


def fast_path(model: nn.Module) -> str:
    """Which path :func:`train_cohort_fast` takes for ``model``: "linear" (batched matmuls),
    "vmap" (``torch.func``) or "reference" (the per-client loop)."""
    return _kernel(model).kind


# --------------------------------------------------------------------------- training


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


def _run_group(
    grad_fn: _GradFn,
    anchors: list[Tensor],
    x: Tensor,
    y: Tensor,
    sched: _Schedule,
    hp: ClientConfig,
) -> _GroupRun:
    """Step the group's clients together until each has taken its steps (or a loss blows up)."""
    size, batch = sched.active[0], hp.batch_size
    ps = [a.expand(size, *a.shape).clone() for a in anchors]
    bufs = [torch.empty_like(p) for p in ps] if hp.momentum else None
    logp = torch.zeros(sched.starts[-1], batch, dtype=x.dtype)
    per_chunk = max(1, _GATHER_BUDGET // (batch * max(1, math.prod(x.shape[1:]))))
    chunk_start = chunk_end = checked = bound = 0
    chunk: tuple[Tensor, ...] = ()
    live, live_bufs, step = ps, bufs, None
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
            step, bound = grad_fn.bind(live, batch, scratch), a
        lo, hi = start - chunk_start, start + a
        assert step is not None
        grads = step(*[t[lo : lo + a] for t in chunk], logp[start:hi])
        _sgd(live, grads, anchors, live_bufs, hp, s == 0)
        if (s + 1) % _CHECK_EVERY == 0:
            if not bool(torch.isfinite(logp[checked:hi]).all()):
                steps_run = s + 1
                break
            checked = hi
    return _GroupRun(ps, logp, steps_run)


def _group_updates(
    run: _GroupRun,
    deltas: list[Tensor],
    sched: _Schedule,
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

    A :class:`~fedhpo.sim.engine.CohortTrainer`. Falls back to the reference loop (warning
    once per model class) for models neither fast path handles.
    """
    if len(cohort) == 0:
        return []
    kernel = _kernel(model)
    usable = (
        kernel.grad_fn is not None
        and set(params) == set(kernel.names)
        and all(p.dtype == dataset.x.dtype for p in params.values())
        and (kernel.flattens or len(dataset.feature_shape) == 1)
    )
    if not usable:
        return _reference(model, params, dataset, cohort, hp, seed, round_)
    assert kernel.grad_fn is not None
    anchors = [params[k].detach() for k in kernel.names]
    keys = [(k, kernel.names.index(k)) for k in params]  # deltas keyed in the caller's order
    try:
        updates = _train(kernel.grad_fn, anchors, keys, dataset, cohort, hp, seed, round_)
    except Exception as exc:  # a model torch.func cannot vectorize: use the reference loop
        if kernel.kind != "vmap":
            raise
        _warn_once(model, f"cannot be vectorized with torch.func ({type(exc).__name__}: {exc})")
        _KERNELS[model] = _Kernel("reference", None)
        return _reference(model, params, dataset, cohort, hp, seed, round_)
    return updates


def _train(
    grad_fn: _GradFn,
    anchors: list[Tensor],
    keys: list[tuple[str, int]],
    dataset: FederatedDataset,
    cohort: np.ndarray,
    hp: ClientConfig,
    seed: int,
    round_: int,
) -> list[ClientUpdate]:
    """Draw, bucket (sort by steps, cut into groups that fit the memory budget), train.

    ``anchors`` are in the kernel's order; ``keys`` maps each delta key, in the order the
    updates list them, to its position there."""
    draws = _draw(dataset, cohort, hp, seed, round_)
    order = np.argsort(-draws.steps, kind="stable")
    order = order[draws.steps[order] > 0]
    per_group = max(1, _PARAM_BUDGET // max(1, sum(a.numel() for a in anchors)))
    first_row = dataset.offsets[cohort]
    zeros = {k: torch.zeros_like(anchors[j]) for k, j in keys}
    updates = [ClientUpdate(zeros, 0, 0.0, 0, True)] * len(cohort)
    internal = grad_fn.to_internal(anchors)
    for lo in range(0, len(order), per_group):
        group = order[lo : lo + per_group]
        sched = _schedule(draws, group, first_row[group], hp.batch_size, dataset.x.dtype)
        run = _run_group(grad_fn, internal, dataset.x, dataset.y, sched, hp)
        final = grad_fn.from_internal(run.params)
        deltas = [
            torch.sub(p, a, out=p.new_empty(p.shape)) for p, a in zip(final, anchors, strict=True)
        ]
        done = _group_updates(run, deltas, sched, keys, draws.n[group])
        for pos, update in zip(group.tolist(), done, strict=True):
            updates[pos] = update
        if run.steps_run < len(sched.active):
            break  # diverged: the engine ends the run, so skip the remaining groups
    for i, update in enumerate(updates):
        if not update.finite:
            return updates[: i + 1]
    return updates


def _reference(
    model: nn.Module,
    params: Params,
    dataset: FederatedDataset,
    cohort: np.ndarray,
    hp: ClientConfig,
    seed: int,
    round_: int,
) -> list[ClientUpdate]:
    from fedhpo.sim.engine import train_cohort_reference  # the engine imports this module

    return train_cohort_reference(model, params, dataset, cohort, hp, seed, round_)
