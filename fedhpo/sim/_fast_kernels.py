"""The fast trainer's kernels: batched gradients of linear stacks (by hand) or via vmap."""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from fedhpo.sim._fast_numpy import Layers
from fedhpo.sim.client import Params

StepFn = Callable[..., list[Tensor]]
"""``step(*chunk slices, logp_out) -> grads``: one SGD step's gradients for the bound clients."""


class GradFn(Protocol):
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
        self.layers = Layers(tuple(b is not None for _, b in layers), classes)
        """What :class:`~fedhpo.sim._fast_numpy.NarrowSteps` needs to take the narrow steps."""

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
class Kernel:
    kind: str
    """"linear", "vmap" or "reference"."""
    grad_fn: GradFn | None
    names: tuple[str, ...] = ()
    """Parameter names in ``model.named_parameters()`` order (the kernel's order)."""
    flattens: bool = True


KERNELS: weakref.WeakKeyDictionary[nn.Module, Kernel] = weakref.WeakKeyDictionary()
_WARNED: set[type] = set()


def kernel_for(model: nn.Module) -> Kernel:
    kernel = KERNELS.get(model)
    if kernel is None:
        names = [n for n, _ in model.named_parameters()]
        found = _linear_layers(model)
        if found is not None:
            classes = dict(model.named_parameters())[found[0][-1][0]].shape[0]
            stack = _LinearStack(found[0], names, classes)
            kernel = Kernel("linear", stack, tuple(names), found[1])
        elif next(model.buffers(), None) is not None:
            warn_once(model, "has buffers (e.g. BatchNorm statistics)")
            kernel = Kernel("reference", None)
        elif any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules()):
            # torch.func turns per-client conv weights into grouped convolutions, which on
            # CPU ran 2.6x slower than the per-client loop for the built-in cnn.
            warn_once(model, "has convolutions (slower under torch.func.vmap on CPU)")
            kernel = Kernel("reference", None)
        else:
            kernel = Kernel("vmap", _Vmapped(model, names), tuple(names))
        KERNELS[model] = kernel
    return kernel


def warn_once(model: nn.Module, why: str) -> None:
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
    """Which path :func:`~fedhpo.sim.fast.train_fast` takes for ``model``: "linear" (batched matmuls),
    "vmap" (``torch.func``) or "reference" (the per-client loop)."""
    return kernel_for(model).kind
