"""The typed outcome of one simulation: per-server-update records and final metrics."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch

from fedhpo.metrics import METRICS
from fedhpo.sim.events import Event

Status = Literal["completed", "stopped", "diverged", "stalled", "interrupted"]
"""How a run ended: ``completed`` (its rounds, its simulated-time budget or its target
accuracy), ``stopped`` by a callback (a pruner), ``diverged`` (a non-finite loss or
parameters; the result keeps the last good parameters), ``stalled`` (no client update
arrived: every client dropped out or missed the deadline), ``interrupted`` (Ctrl-C)."""


@dataclass(frozen=True)
class RoundRecord:
    """What happened in one server update (1-based: a synchronous round, or one FedBuff
    buffer flush). Test metrics are None between evaluations; times are simulated seconds
    (``sim_seconds`` since the start of the run) except ``wall_seconds``."""

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
    """Client local SGD steps trained since the previous update (the compute a budget
    counts; in a round, those of its clients)."""
    sim_seconds: float = 0.0
    """Simulated time of this update since the start of the run."""
    update_seconds: float = 0.0
    """Simulated time since the previous update."""
    dropped: int = 0
    """Clients that dropped out (never reported) since the previous update."""
    cut: int = 0
    """Clients cut since the previous update: late at a deadline or a full round, or too stale."""
    staleness: float = 0.0
    """Mean staleness (server updates) of the client updates aggregated."""


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
    events: tuple[Event, ...] = field(default=(), repr=False, compare=False)
    """The timestamped event log, when the run was asked to record it."""
    time_to_accuracy: float = math.nan
    """Simulated seconds to ``federation.target_accuracy`` (nan if not set or not reached)."""
    unrecorded_steps: int = 0
    """Client local steps trained for an update that recorded nothing: the round a run
    diverged in (its clients trained, then the loss or the parameters were not finite)."""

    @property
    def last(self) -> RoundRecord | None:
        return self.rounds[-1] if self.rounds else None

    @property
    def bytes_sent(self) -> int:
        """Bytes sent up and down over the whole run (float32 parameters)."""
        return sum(r.bytes_up + r.bytes_down for r in self.rounds)

    @property
    def sim_seconds(self) -> float:
        """Simulated seconds up to the last server update."""
        return self.rounds[-1].sim_seconds if self.rounds else 0.0

    @property
    def clients_dropped(self) -> int:
        return sum(r.dropped for r in self.rounds)

    @property
    def clients_cut(self) -> int:
        return sum(r.cut for r in self.rounds)

    @property
    def samples_processed(self) -> int:
        return sum(r.samples for r in self.rounds)

    @property
    def steps(self) -> int:
        """Client local SGD steps over the whole run, the diverged round's included."""
        return sum(r.steps for r in self.rounds) + self.unrecorded_steps

    def metric(self, name: str) -> float:
        """A final metric by name (see :data:`METRICS`); nan when there is none."""
        last = self.last
        values: dict[str, float] = {
            "test_accuracy": self.test_accuracy,
            "test_loss": self.test_loss,
            "bytes_sent": float(self.bytes_sent),
            "wall_seconds": self.wall_seconds,
            "sim_seconds": self.sim_seconds,
            "time_to_accuracy": self.time_to_accuracy,
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
            "clients_dropped": self.clients_dropped,
            "clients_cut": self.clients_cut,
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
