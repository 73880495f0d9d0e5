"""The fast trainer's narrow steps: Linear(+ReLU) stacks with few clients left, in numpy.

A group's clients are sorted by their number of steps, so a heavy-tailed cohort ends in a
long run of steps that train one or two clients: on FedProx's Synthetic(1, 1), most of a
round's ~5,000 steps train its one or two largest clients. Such a step is about twenty
operations on arrays of a few hundred floats; torch spends ~5 us dispatching each, numpy
~1 us, while on wide steps torch's vectorized kernels win. So the trainer takes a group's
wide steps with torch and hands the narrow rest (:func:`~fedhpo.sim.fast.narrow_from`) to
:class:`NarrowSteps`, which works in place on numpy views of the same tensors (parameters,
momentum buffers, log-probabilities).

The maths is ``_LinearStack``'s step and :func:`~fedhpo.sim._fast_sgd.sgd`'s update in the
same layout (each layer one ``(in [+1], out)`` matrix, logits ``(classes, batch)``), rounded
differently: results match the reference trainer to float rounding, as the torch steps do.
Bit for bit, one machine gives the same numbers run after run, and a run gets the same
numbers alone or batched with other configs (:func:`~fedhpo.sim.batch.run_batch`): every
operation works row by row, the route of a step does not depend on the other configs, and a
client whose momentum, weight decay or mu is 0 goes through the same operations as one whose
rates are not (adding zeros), so per-client rates round as uniform ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from fedhpo.sim._fast_schedule import Schedule
from fedhpo.sim._fast_sgd import Rates

NARROW_ROWS = 128
"""Steps that train at most ``NARROW_ROWS // batch_size`` distinct clients run in numpy. On a
2-core x86 machine (2026-12-07) numpy's step took 30-50% of torch's time up to ~128 rows
(clients x batch size) and about as long at 256-512 rows (Synthetic(1, 1) logreg at batch
10; workload W's MLP at batch 16 and 64)."""


@dataclass(frozen=True)
class Layers:
    """The shape of a Linear(+ReLU) stack: per layer whether its matrix has a bias row."""

    biased: tuple[bool, ...]
    classes: int


class NarrowSteps:
    """A group's narrow steps, taken in place on numpy views of the group's tensors.

    ``ps`` and ``bufs`` are the group's stacked parameters and momentum buffers in the
    kernel's layout (``bufs`` as torch's SGD holds them), ``anchors`` the start parameters
    (one row per client when they have a leading client dimension like ``ps``), ``logp``
    the ``(pairs, batch)`` log-probability of each row's label, filled for the steps taken.
    Inputs are gathered about ``per_chunk`` pairs at a time.

    The learning rate is folded into each step's gradient (``-lr`` x the row weights and
    targets), so the SGD update is a few in-place adds; the momentum buffers hold ``-lr`` x
    torch's (scaled once at the hand-over).
    """

    def __init__(
        self,
        layers: Layers,
        ps: list[Tensor],
        bufs: list[Tensor] | None,
        anchors: list[Tensor],
        x: Tensor,
        y: Tensor,
        sched: Schedule,
        logp: Tensor,
        rates: Rates,
        per_chunk: int,
    ) -> None:
        self.layers, self.sched = layers, sched
        self.ps = [p.numpy() for p in ps]
        self.bufs = None if bufs is None else [b.numpy() for b in bufs]
        self.anchors = [a.numpy() for a in anchors]
        self.stacked_anchors = anchors[0].dim() == ps[0].dim()
        self.x, self.y = x.flatten(1).numpy(), y.numpy()
        self.logp = logp.numpy()
        self.rows, self.weight = sched.rows.numpy(), sched.weight.numpy()
        # per client of the group (a float when uniform), as float64 from the parameters'
        # dtype whether uniform or not, so that a run batched with others (per-client
        # rates) rounds as it does alone: -lr, momentum, -lr (mu + wd), -lr mu
        dtype = self.ps[0].dtype
        step, momentum, decay, mu = (_per_client(r, dtype) for r in rates.rates)
        self.step, self.momentum = np.asarray(step, dtype), momentum
        self.shrink = step * (mu + decay) if _nonzero(mu) or _nonzero(decay) else 0.0
        self.pull = step * mu if _nonzero(mu) else 0.0
        self.batch = self.rows.shape[1]
        self.per_chunk = per_chunk
        self.chunk_start = self.chunk_end = self.filled = 0

    def run(self, first_step: int, check_every: int) -> int:
        """Take the steps from ``first_step`` on; returns the steps run. With
        ``check_every``, every that many steps (counted from the group's first) a non-finite
        loss stops the group: the result is then the number of steps run up to the check."""
        with np.errstate(all="ignore"):  # a diverging run overflows; the check reports it
            return self._run(first_step, check_every)

    def _run(self, first_step: int, check_every: int) -> int:
        active, starts = self.sched.active, self.sched.starts
        if first_step >= len(active):
            return len(active)
        if first_step and self.bufs is not None:  # torch's buffers, in this loop's scale
            for b in self.bufs:
                np.multiply(b, _column(self.step, b.ndim), out=b)
        self.filled = checked = starts[first_step]
        bound = 0
        for s in range(first_step, len(active)):
            a, start = active[s], starts[s]
            if start + a > self.chunk_end:
                self._flush(start)
                self._chunk(s)
            if a != bound:
                step, bound = self._bind(a), a
            step(start - self.chunk_start, s == 0)
            if check_every and (s + 1) % check_every == 0:
                self._flush(start + a)
                if not np.isfinite(self.logp[checked : start + a]).all():
                    return s + 1
                checked = start + a
        self._flush(starts[-1])
        return len(active)

    def _chunk(self, s: int) -> None:
        """Gather the inputs of the steps from ``s`` on that fit the gather budget."""
        starts = self.sched.starts
        start = starts[s]
        last = int(np.searchsorted(starts, start + self.per_chunk, side="right")) - 1
        end = starts[max(last, s + 1)]
        batch, classes, features = self.batch, self.layers.classes, self.x.shape[1]
        pairs = end - start
        flat = self.rows[start:end].reshape(-1)
        xs = np.empty((pairs * batch, features + self.layers.biased[0]), dtype=self.x.dtype)
        xs[:, :features] = self.x[flat]
        if self.layers.biased[0]:
            xs[:, -1] = 1.0
        labels = self.y[flat].reshape(pairs, batch)
        # where each row's label is in the (pairs, classes, batch) logits, flattened
        at = (np.arange(pairs)[:, None] * classes + labels) * batch + np.arange(batch)
        weight = self.weight[start:end]
        if self.step.ndim:
            weight = weight * self.step[self.sched.pair_client[start:end]][:, None]
        else:
            weight = weight * self.step
        target = np.zeros((pairs, classes, batch), dtype=weight.dtype)
        target.reshape(-1)[at.reshape(-1)] = -weight.reshape(-1)
        self.xs = xs.reshape(pairs, batch, -1)
        self.at = at
        self.w3 = weight.reshape(pairs, 1, batch)  # -lr x row weight
        self.target = target  # -(-lr x row weight) at each row's label
        self.z = np.empty((pairs, classes, batch), dtype=weight.dtype)
        self.lse = np.empty((pairs, 1, batch), dtype=weight.dtype)
        self.chunk_start, self.chunk_end = start, end

    def _flush(self, upto: int) -> None:
        """Write the label log-probabilities of pairs ``filled .. upto`` into ``logp``."""
        lo, hi = self.filled - self.chunk_start, min(upto, self.chunk_end) - self.chunk_start
        if hi > lo:
            label = self.z.reshape(-1).take(self.at[lo:hi])
            np.subtract(
                label, self.lse[lo:hi, 0], out=self.logp[self.filled : self.filled + hi - lo]
            )
            self.filled += hi - lo

    def _bind(self, a: int) -> Callable[[int, bool], None]:
        """The step function for ``a`` active clients (views and buffers made once per ``a``)."""
        ps = [p[:a] for p in self.ps]
        last = len(ps) - 1
        biased, classes, batch = self.layers.biased, self.layers.classes, self.batch
        dtype = ps[0].dtype
        widths = [p.shape[2] for p in ps]
        hidden = [np.ones((a, batch, widths[i] + biased[i + 1]), dtype) for i in range(last)]
        relu_out = [h[:, :, : widths[i]] for i, h in enumerate(hidden)]
        hidden_t = [h.transpose(0, 2, 1) for h in hidden]
        mask = [np.empty((a, batch, widths[i]), bool) for i in range(last)]
        dh = [np.empty((a, batch, widths[i]), dtype) for i in range(last)]
        w_last_t = ps[last].transpose(0, 2, 1)
        w_back = [ps[i + 1][:, : widths[i]].transpose(0, 2, 1) for i in range(last)]
        grads = [np.empty_like(p) for p in ps]
        tmp = [np.empty_like(p) for p in ps]
        m = np.empty((a, 1, batch), dtype)
        scale = np.empty((a, 1, batch), dtype)
        e = np.empty((a, classes, batch), dtype)
        dz_t = e.transpose(0, 2, 1)
        bufs = None if self.bufs is None else [b[:a] for b in self.bufs]
        momentum = np.asarray(_head(self.momentum, a, 3), dtype)
        # the update w += -lr (g + (mu + wd) w - mu anchor) = grad + shrink w + offset
        # (rates as arrays of the parameters' dtype: numpy converts a Python float per call)
        shrink = np.asarray(_head(self.shrink, a, 3), dtype)
        shrinks = _nonzero(self.shrink)
        offsets = [None] * len(ps)
        if _nonzero(self.pull):
            pull = np.asarray(_head(self.pull, a, 3), dtype)
            anchors = [t[:a] for t in self.anchors] if self.stacked_anchors else self.anchors
            offsets = [-(pull * t) for t in anchors]

        def step(lo: int, first: bool) -> None:
            x = self.xs[lo : lo + a]
            z = self.z[lo : lo + a]
            lse = self.lse[lo : lo + a]
            h = x
            for i in range(last):
                np.matmul(h, ps[i], out=relu_out[i])
                np.maximum(relu_out[i], 0, out=relu_out[i])
                h = hidden[i]
            h_t = hidden_t[-1] if last else x.transpose(0, 2, 1)
            np.matmul(w_last_t, h_t, out=z)  # logits (a, classes, batch)
            np.maximum.reduce(z, axis=1, keepdims=True, out=m)
            np.subtract(z, m, out=z)
            np.exp(z, out=e)
            np.add.reduce(e, axis=1, keepdims=True, out=lse)
            np.divide(self.w3[lo : lo + a], lse, out=scale)
            np.log(lse, out=lse)  # log-softmax = z - lse, taken at the labels by _flush
            np.multiply(e, scale, out=e)
            np.add(e, self.target[lo : lo + a], out=e)  # -lr x row weight x (softmax - onehot)
            np.matmul(h_t, dz_t, out=grads[last])
            if last:
                np.matmul(dz_t, w_back[last - 1], out=dh[last - 1])
            for i in range(last - 1, -1, -1):
                np.greater(relu_out[i], 0, out=mask[i])
                np.multiply(dh[i], mask[i], out=dh[i])
                np.matmul(hidden_t[i - 1] if i else x.transpose(0, 2, 1), dh[i], out=grads[i])
                if i:
                    np.matmul(dh[i], w_back[i - 1], out=dh[i - 1])
            for w, g, t, offset, k in zip(ps, grads, tmp, offsets, range(len(ps)), strict=True):
                # the same operations whatever the rates, so that a client with momentum 0
                # in a call where others have momentum rounds as it does alone
                if shrinks:
                    np.multiply(w, shrink, out=t)
                    np.add(g, t, out=g)
                if offset is not None:
                    np.add(g, offset, out=g)
                if bufs is not None:
                    if first:
                        np.copyto(bufs[k], g)
                    else:
                        np.multiply(bufs[k], momentum, out=bufs[k])
                        np.add(bufs[k], g, out=bufs[k])
                    g = bufs[k]
                np.add(w, g, out=w)

        return step


def _per_client(rate: float | list[Tensor], dtype: np.dtype) -> float | np.ndarray:
    """A group's rate: a float, or one per client (from torch's columns), in float64 but
    rounded to ``dtype`` first, as torch's columns are."""
    if isinstance(rate, float):
        return float(np.asarray(rate, dtype))
    return rate[0].numpy().reshape(-1).astype(np.float64)


def _nonzero(rate: float | np.ndarray) -> bool:
    return bool(rate) if isinstance(rate, float) else True


def _column(rate: float | np.ndarray, ndim: int) -> float | np.ndarray:
    if isinstance(rate, float) or not np.ndim(rate):
        return rate
    return rate.reshape(-1, *[1] * (ndim - 1))


def _head(rate: float | np.ndarray, a: int, ndim: int) -> float | np.ndarray:
    """The rate of the first ``a`` clients, shaped to broadcast over ``ndim``-d stacks."""
    return rate if isinstance(rate, float) else _column(rate[:a], ndim)
