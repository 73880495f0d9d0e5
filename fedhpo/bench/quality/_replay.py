"""Replay: a trial's run read back from the ground-truth table instead of simulated.

A run of ``r`` rounds is the first ``r`` rounds of the full run with the same seed, so a
table of full runs answers every trial of a rounds-based schedule exactly, at the grid's
resolution: a config is snapped to the nearest grid point (log scale for log parameters,
exact match for categorical ones). That makes a strategy cost seconds to evaluate, so each
can be run with many tuner seeds, while the compute it would have spent is still counted
from the recorded client steps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from fedhpo.bench.quality._truth import Table
from fedhpo.config import RunConfig
from fedhpo.sim.engine import RoundCallback
from fedhpo.sim.result import RoundRecord, SimulationResult, Status
from fedhpo.space import CategoricalParam, SearchSpace


def _lookup(config: dict[str, Any], path: str) -> Any:
    node: Any = config
    for part in path.split("."):
        node = node[part]
    return node


class Replay:
    """A :data:`fedhpo.tune.Simulate` answering from ``table`` (snapping to its grid)."""

    def __init__(self, table: Table, space: SearchSpace) -> None:
        self.table = table
        self.params = {p.name: p for p in space.params}

    def _scale(self, name: str, value: Any) -> float:
        p = self.params[name]
        span = (math.log(p.high) - math.log(p.low)) if p.log else (p.high - p.low)  # type: ignore[union-attr]
        x = math.log(value) if p.log else float(value)  # type: ignore[union-attr]
        return x / (span or 1.0)

    def _distance(self, point: Mapping[str, Any], values: Mapping[str, Any]) -> float:
        d = 0.0
        for name, v in point.items():
            if isinstance(self.params[name], CategoricalParam):
                if v != values[name]:
                    return math.inf
            else:
                d += (self._scale(name, v) - self._scale(name, values[name])) ** 2
        return d

    def snap(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The grid point nearest to ``values`` (a config's or a trial's parameter values)."""
        return min(self.table.points, key=lambda point: self._distance(point, values))

    def point_of(self, config: RunConfig) -> dict[str, Any]:
        data = config.to_dict()
        return self.snap({name: _lookup(data, name) for name in self.params})

    def __call__(
        self, config: RunConfig, callbacks: Sequence[RoundCallback] = ()
    ) -> SimulationResult:
        record = self.table.run(self.point_of(config), config.seed)
        rounds = config.federation.rounds
        series = {k: record[k] for k in ("val_accuracy", "val_loss", "train_loss", "steps")}
        records: list[RoundRecord] = []
        status: Status = "completed"
        reason = f"ran all {rounds} rounds"
        unrecorded = 0
        for r in range(1, min(rounds, len(series["steps"])) + 1):
            rec = RoundRecord(
                round=r,
                train_loss=_num(series["train_loss"][r - 1]),
                val_loss=_num(series["val_loss"][r - 1]),
                val_accuracy=_num(series["val_accuracy"][r - 1]),
                test_loss=None,
                test_accuracy=None,
                clients=0,
                samples=0,
                bytes_up=0,
                bytes_down=0,
                wall_seconds=0.0,
                steps=int(series["steps"][r - 1]),
            )
            records.append(rec)
            metrics = {k: v for k, v in rec.__dict__.items() if v is not None}
            if any([bool(cb(r, metrics)) for cb in callbacks]) and r < rounds:
                status, reason = "stopped", f"stopped by a callback after round {r}"
                break
        else:
            if len(records) < rounds and record["status"] != "completed":
                status, reason = "diverged", record["reason"]
                unrecorded = int(record.get("unrecorded_steps") or 0)
        full = status == "completed" and len(records) == len(series["steps"])
        test = record["test_accuracy"] if full and record["test_accuracy"] is not None else math.nan
        return SimulationResult(
            status=status,
            reason=reason,
            rounds=tuple(records),
            test_loss=math.nan,
            test_accuracy=test,
            client_accuracies=(),
            num_clients=0,
            seed=config.seed,
            data_seed=config.data.seed,
            wall_seconds=0.0,
            params={},
            unrecorded_steps=unrecorded,
        )


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)
