"""The fast trainer's SGD step on stacked clients, each with its own rates when they differ."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fedhpo.sim.work import Work

RATES = ("lr", "momentum", "weight_decay", "mu")
Rate = float | list[Tensor]
"""A hyperparameter of a group: one float, or per parameter a ``(a, 1, ...)`` column."""


@dataclass
class Rates:
    """The group's SGD hyperparameters, floats when uniform (the exact lock-step route)."""

    step: Rate
    """Minus the learning rate."""
    momentum: Rate
    weight_decay: Rate
    mu: Rate

    @staticmethod
    def of(work: Work, group: np.ndarray, like: list[Tensor]) -> Rates:
        """Rates of the clients ``group`` (work positions), as columns that broadcast over
        stacked copies of the parameters ``like``."""
        varying = work.varying()
        rates: dict[str, Rate] = {}
        for name in RATES:
            sign = -1.0 if name == "lr" else 1.0
            if name not in varying:
                rates[name] = sign * float(getattr(work.hp_of(0), name))
                continue
            values = sign * np.array(work.values(name), dtype=np.float64)[group]
            col = torch.tensor(values).to(like[0].dtype)
            rates[name] = [col.view(-1, *[1] * p.dim()) for p in like]
        return Rates(rates["lr"], rates["momentum"], rates["weight_decay"], rates["mu"])

    def head(self, a: int) -> Rates:
        """The rates of the first ``a`` clients (the ones still training)."""
        return Rates(*[r if isinstance(r, float) else [c[:a] for c in r] for r in self.rates])

    @property
    def rates(self) -> tuple[Rate, ...]:
        return (self.step, self.momentum, self.weight_decay, self.mu)

    def any(self, name: str) -> bool:
        rate = getattr(self, name)
        return bool(rate) if isinstance(rate, float) else True


def _axpy(y: Tensor, x: Tensor, rate: Rate, k: int) -> None:
    """``y += rate * x`` in place for parameter ``k`` (``rate`` a float or per-client columns)."""
    if isinstance(rate, float):
        y.add_(x, alpha=rate)
    else:
        y.addcmul_(x, rate[k])


def sgd(
    ps: list[Tensor],
    grads: list[Tensor],
    anchors: list[Tensor],
    bufs: list[Tensor] | None,
    hp: Rates,
    first: bool,
) -> None:
    """``torch.optim.SGD``'s step in place on stacked params (proximal gradient added first)."""
    for k, (w, g) in enumerate(zip(ps, grads, strict=True)):
        if hp.any("mu"):
            _axpy(g, w - anchors[k], hp.mu, k)
        if hp.any("weight_decay"):
            _axpy(g, w, hp.weight_decay, k)
        if bufs is not None:
            m = hp.momentum if isinstance(hp.momentum, float) else hp.momentum[k]
            g = bufs[k].copy_(g) if first else bufs[k].mul_(m).add_(g)
        _axpy(w, g, hp.step, k)
