"""Study settings of a search space: objectives, fidelity and tuner names, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from fedhpo.errors import SearchSpaceError
from fedhpo.space._conditions import is_number

METRICS: dict[str, str] = {
    "val_accuracy": "maximize",
    "val_loss": "minimize",
    "test_accuracy": "maximize",
    "test_loss": "minimize",
    "train_loss": "minimize",
    "bytes_sent": "minimize",
    "wall_seconds": "minimize",
}
"""Metrics a study can optimize, each with its default direction."""

DIRECTIONS = ("maximize", "minimize")

DEFAULT_TRIALS = 30

SAMPLERS = ("tpe", "random", "gp", "cmaes", "qmc", "grid")
"""Sampler names (the tune layer maps them to Optuna samplers); the first is the default."""

PRUNERS = ("hyperband", "none", "median", "successive_halving")
"""Pruner names (the tune layer maps them to Optuna pruners); the first is the default."""


def _names(items: Any) -> str:
    return ", ".join(items)


@dataclass(frozen=True)
class Objective:
    """One metric to optimize; ``direction=None`` takes the metric's default from METRICS."""

    metric: str = "val_accuracy"
    direction: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or self.metric not in METRICS:
            raise SearchSpaceError(
                f"unknown metric {self.metric!r}; use one of: {_names(METRICS)}", key="metric"
            )
        if self.direction is None:
            object.__setattr__(self, "direction", METRICS[self.metric])
        elif self.direction not in DIRECTIONS:
            raise SearchSpaceError(
                f"direction must be maximize or minimize, got {self.direction!r}", key="direction"
            )

    def to_dict(self) -> dict[str, Any]:
        """``{"metric": ..., "direction": ...}``."""
        return {"metric": self.metric, "direction": self.direction}


def _optional_int(value: Any, key: str, minimum: int) -> None:
    if value is None:
        return
    if not is_number(value) or isinstance(value, float) or value < minimum:
        raise SearchSpaceError(f"must be an integer >= {minimum}, got {value!r}", key=key)


def _optional_fraction(value: Any, key: str) -> None:
    if value is None:
        return
    if not is_number(value) or not 0 < value <= 1:
        raise SearchSpaceError(f"must be a number in (0, 1], got {value!r}", key=key)


@dataclass(frozen=True)
class Fidelity:
    """The cheap run every trial makes; ``None`` keeps the base config's value."""

    rounds: int | None = None
    clients_per_round: int | None = None
    client_fraction: float | None = None
    data_fraction: float | None = None
    eval_every: int | None = None

    def __post_init__(self) -> None:
        _optional_int(self.rounds, "rounds", 1)
        _optional_int(self.clients_per_round, "clients_per_round", 1)
        _optional_fraction(self.client_fraction, "client_fraction")
        _optional_fraction(self.data_fraction, "data_fraction")
        _optional_int(self.eval_every, "eval_every", 1)
        if self.clients_per_round is not None and self.client_fraction is not None:
            raise SearchSpaceError(
                "give clients_per_round or client_fraction, not both", key="client_fraction"
            )

    def overrides(self) -> dict[str, Any]:
        """The run-config values this fidelity sets, by dotted path."""
        out: dict[str, Any] = {}
        if self.rounds is not None:
            out["federation.rounds"] = self.rounds
        if self.clients_per_round is not None:
            out["federation.clients_per_round"] = self.clients_per_round
            out["federation.client_fraction"] = None
        if self.client_fraction is not None:
            out["federation.client_fraction"] = float(self.client_fraction)
            out["federation.clients_per_round"] = None
        if self.data_fraction is not None:
            out["data.fraction"] = float(self.data_fraction)
        if self.eval_every is not None:
            out["federation.eval_every"] = self.eval_every
        return out

    def setting_of(self, path: str) -> str | None:
        """The fidelity key that sets config ``path``, if any."""
        names = {
            "federation.rounds": "rounds",
            "federation.clients_per_round": "clients_per_round",
            "federation.client_fraction": "client_fraction",
            "data.fraction": "data_fraction",
            "federation.eval_every": "eval_every",
        }
        if path not in self.overrides():
            return None
        if path in ("federation.clients_per_round", "federation.client_fraction"):
            return "clients_per_round" if self.clients_per_round is not None else "client_fraction"
        return names[path]

    def to_dict(self) -> dict[str, Any]:
        """All fields (``None`` where the base config decides)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class TunerSpec:
    """Sampler and pruner names, trial budget and seed of a study."""

    sampler: str = "tpe"
    pruner: str | None = None
    """``None``: hyperband, or none when the study has several objectives."""
    trials: int | None = None
    """``None``: 30, or the number of grid points for the grid sampler."""
    timeout: float | None = None
    """Seconds, or ``None`` for no time limit."""
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.sampler, str) or self.sampler not in SAMPLERS:
            raise SearchSpaceError(
                f"unknown sampler {self.sampler!r}; use one of: {_names(SAMPLERS)}", key="sampler"
            )
        if self.pruner is not None and (
            not isinstance(self.pruner, str) or self.pruner not in PRUNERS
        ):
            raise SearchSpaceError(
                f"unknown pruner {self.pruner!r}; use one of: {_names(PRUNERS)}", key="pruner"
            )
        _optional_int(self.trials, "trials", 1)
        if self.timeout is not None and (not is_number(self.timeout) or self.timeout <= 0):
            raise SearchSpaceError(
                f"must be a number of seconds > 0 or null, got {self.timeout!r}", key="timeout"
            )
        if not is_number(self.seed) or isinstance(self.seed, float):
            raise SearchSpaceError(f"must be an integer, got {self.seed!r}", key="seed")

    def to_dict(self) -> dict[str, Any]:
        """All fields."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
