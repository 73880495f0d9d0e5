"""Shared test inputs: a tiny generated federation, a tiny lr/mu search space, and a scripted
run to stand in for the simulator."""

from __future__ import annotations

import math
from typing import Any

BASE = """\
data:
  name: synthetic
  options: {alpha: 1.0, beta: 1.0, num_clients: 12}
model: {name: logreg}
client: {lr: 0.05, batch_size: 16, local_epochs: 1}
federation: {rounds: 12, clients_per_round: 4, eval_every: 1}
seed: 0
"""

LR_MU = """\
  client.lr: {type: float, low: 1.0e-4, high: 1.0, log: true}
  client.mu: {type: float, low: 0.0, high: 1.0}
"""


def climbing_run(tops: list[float]) -> Any:
    """A ``Simulate`` whose n-th run's validation accuracy climbs linearly to ``tops[n]``, at
    the real run's client steps per round (so the budget counts as it would)."""
    from fedhpo.sim.result import RoundRecord, SimulationResult
    from fedhpo.tune._budget import run_steps
    from fedhpo.tune._objective import cached_dataset

    calls: list[int] = []

    def run(config, callbacks=()):
        top = tops[len(calls)]
        calls.append(1)
        rounds = config.federation.rounds
        per_round = run_steps(config, cached_dataset(config.data)) // rounds
        records = []
        status, reason = "completed", f"ran all {rounds} rounds"
        for r in range(1, rounds + 1):
            record = RoundRecord(
                round=r, train_loss=1.0, val_loss=1.0, val_accuracy=top * r / rounds,
                test_loss=None, test_accuracy=None, clients=0, samples=0, bytes_up=0,
                bytes_down=0, wall_seconds=0.0, steps=per_round,
            )  # fmt: skip
            records.append(record)
            metrics = {k: v for k, v in record.__dict__.items() if v is not None}
            if any([bool(cb(r, metrics)) for cb in callbacks]) and r < rounds:
                status, reason = "stopped", f"stopped by a callback after round {r}"
                break
        return SimulationResult(
            status=status, reason=reason, rounds=tuple(records), test_loss=math.nan,
            test_accuracy=math.nan, client_accuracies=(), num_clients=0, seed=config.seed,
            data_seed=config.data.seed, wall_seconds=0.0, params={},
        )  # fmt: skip

    return run
