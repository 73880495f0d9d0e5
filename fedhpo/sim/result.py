"""The typed outcome of one simulation: per-round records and final metrics."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch

from fedhpo.metrics import METRICS

Status = Literal["completed", "stopped", "diverged", "interrupted"]


@dataclass(frozen=True)
class RoundRecord:
    """What happened in one round (1-based). Test metrics are None between evaluations."""

    round: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    test_loss: float | None
    test_accuracy: float | None
    clients: int
    samples: int
    bytes_up: int
    bytes_down: int
    wall_seconds: float
    steps: int = 0
    """Client local SGD steps taken this round (the compute a budget counts)."""


@dataclass(frozen=True)
class SimulationResult:
    """One federated run: status, per-round curves, final metrics and the final weights."""

    status: Status
    reason: str
    rounds: tuple[RoundRecord, ...]
    test_loss: float
    test_accuracy: float
    client_accuracies: tuple[float, ...]
    """Final validation accuracy of each validation client (fairness across clients)."""
    num_clients: int
    seed: int
    data_seed: int
    wall_seconds: float
    params: dict[str, torch.Tensor] = field(repr=False, compare=False)

    @property
    def last(self) -> RoundRecord | None:
        return self.rounds[-1] if self.rounds else None

    @property
    def bytes_sent(self) -> int:
        """Bytes sent up and down over the whole run (float32 parameters)."""
        return sum(r.bytes_up + r.bytes_down for r in self.rounds)

    @property
    def samples_processed(self) -> int:
        return sum(r.samples for r in self.rounds)

    @property
    def steps(self) -> int:
        """Client local SGD steps over the whole run."""
        return sum(r.steps for r in self.rounds)

    def metric(self, name: str) -> float:
        """A final metric by name (see :data:`METRICS`); nan when there is none."""
        last = self.last
        values: dict[str, float] = {
            "test_accuracy": self.test_accuracy,
            "test_loss": self.test_loss,
            "bytes_sent": float(self.bytes_sent),
            "wall_seconds": self.wall_seconds,
            "val_accuracy": last.val_accuracy if last else math.nan,
            "val_loss": last.val_loss if last else math.nan,
            "train_loss": last.train_loss if last else math.nan,
        }
        if name not in values:
            raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
        return values[name]

    def curve(self, name: str) -> list[tuple[int, float]]:
        """(round, value) pairs of a per-round metric, skipping rounds without a value."""
        out = []
        for r in self.rounds:
            value = getattr(r, name)
            if value is not None:
                out.append((r.round, float(value)))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (everything but the weights)."""
        return {
            "status": self.status,
            "reason": self.reason,
            "final": {m: _json_float(self.metric(m)) for m in METRICS},
            "samples_processed": self.samples_processed,
            "steps": self.steps,
            "num_clients": self.num_clients,
            "seed": self.seed,
            "data_seed": self.data_seed,
            "client_accuracies": [_json_float(a) for a in self.client_accuracies],
            "rounds": [{k: _json_float(v) for k, v in asdict(r).items()} for r in self.rounds],
        }


def _json_float(value: Any) -> Any:
    """JSON has no nan/inf: write them as None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
