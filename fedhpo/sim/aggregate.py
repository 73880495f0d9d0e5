"""The aggregation stage: client weights (samples, uniform, staleness) and their mean delta.

Pure functions of arrays and tensors. A server update aggregates :class:`Contributions`
(the stacked deltas of the client updates it uses, with their sample counts and staleness):
each transform of the stage (none are built in yet; clipping and noise would go here) maps
contributions to contributions, then :func:`client_weights` gives each update a weight and
:func:`weighted_mean` the pseudo-gradient the server optimizer applies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from fedhpo.sim.client import Params

__all__ = [
    "Contributions",
    "StalenessRule",
    "Transform",
    "aggregate",
    "client_weights",
    "staleness_factors",
    "weighted_mean",
]

Weighting = Literal["samples", "uniform"]
StalenessKind = Literal["constant", "polynomial", "hinge"]


@dataclass(frozen=True, eq=False)
class Contributions:
    """The ``k`` client updates one server update uses, in aggregation order."""

    deltas: Params
    """Per parameter, ``(k, *shape)``."""
    num_samples: np.ndarray
    """int64 (k,): training rows of each client."""
    staleness: np.ndarray
    """int64 (k,): server updates between the model a client started from and this one."""

    def __len__(self) -> int:
        return len(self.num_samples)


@dataclass(frozen=True)
class StalenessRule:
    """How much an update ``s`` server versions old counts (Xie et al., 2019, FedAsync).

    constant: 1; polynomial: ``(1 + s) ** -exponent``; hinge: 1 up to ``offset``, then
    ``1 / (exponent * (s - offset) + 1)``.
    """

    kind: StalenessKind = "constant"
    exponent: float = 0.5
    offset: int = 0


#: One step of the stage before weighting (e.g. clipping each delta, adding noise).
Transform = Callable[[Contributions], Contributions]


def staleness_factors(staleness: np.ndarray, rule: StalenessRule) -> np.ndarray:
    """float64 factor of each update under ``rule`` (1.0 for fresh updates)."""
    s = np.asarray(staleness, dtype=np.float64)
    if rule.kind == "constant":
        return np.ones_like(s)
    if rule.kind == "polynomial":
        return np.power(1.0 + s, -rule.exponent)
    late = np.maximum(s - rule.offset, 0.0)
    return 1.0 / (rule.exponent * late + 1.0)


def client_weights(
    contrib: Contributions, weighting: Weighting, rule: StalenessRule
) -> tuple[np.ndarray, float]:
    """``(weights, norm)``: the mean is ``sum(weights * deltas) / norm``.

    samples: ``weights = n * factor``, ``norm = sum(n)``; uniform: ``weights = factor``,
    ``norm`` = the number of clients with rows. Stale updates thus shrink the step instead of
    being renormalised away (FedBuff); with fresh updates either is a plain weighted mean.
    Clients without rows weigh 0.
    """
    factor = staleness_factors(contrib.staleness, rule)
    has_rows = contrib.num_samples > 0
    if weighting == "uniform":
        return np.where(has_rows, factor, 0.0), float(int(has_rows.sum()))
    n = contrib.num_samples.astype(np.float64)
    total = float(int(contrib.num_samples.sum()))
    return (n, total) if rule.kind == "constant" else (n * factor, total)


def weighted_mean(deltas: Params, weights: np.ndarray, norm: float) -> Params:
    """``sum_i weights[i] * deltas[i] / norm`` per parameter, accumulated in float64.

    Rows of weight 0 are left out (an empty client adds nothing, exactly), so identical
    deltas average back to themselves exactly. Non-finite deltas propagate.
    """
    used = np.flatnonzero(weights != 0)
    if len(used) == 0 or norm <= 0:
        raise ValueError("aggregation needs at least one update with a weight > 0")
    index = torch.from_numpy(used)
    w = torch.from_numpy(np.ascontiguousarray(weights[used], dtype=np.float64))
    out: Params = {}
    for k, stacked in deltas.items():
        rows = stacked if len(used) == len(stacked) else stacked.index_select(0, index)
        out[k] = (torch.tensordot(w, rows.to(torch.float64), dims=1) / norm).to(stacked.dtype)
    return out


def aggregate(
    contrib: Contributions,
    weighting: Weighting = "samples",
    rule: StalenessRule = StalenessRule(),
    transforms: Sequence[Transform] = (),
) -> Params:
    """The pseudo-gradient of a server update: transforms, then the weighted mean."""
    for transform in transforms:
        contrib = transform(contrib)
    return weighted_mean(contrib.deltas, *client_weights(contrib, weighting, rule))
