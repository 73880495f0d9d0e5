"""Study settings of a search space: objectives, fidelity and tuner names, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from fedhpo.errors import SearchSpaceError
from fedhpo.metrics import METRICS
from fedhpo.space._conditions import is_number

DIRECTIONS = ("maximize", "minimize")

DEFAULT_TRIALS = 30
"""Trials of a study that has no compute budget (multi-objective studies)."""

DEFAULT_BUDGET = 10.0
"""Compute of a single-objective search when neither trials nor budget is given, in
full-run equivalents (client local steps of one full-fidelity run of the base config)."""

DEFAULT_PROMOTE = 0
"""Top trials re-run with more seeds by default: none (at a budget of 10 full runs the
quality benchmark found the re-runs better spent on search; `--promote K` turns it on)."""

SAMPLERS = ("tpe", "random", "gp", "cmaes", "qmc", "grid")
"""Sampler names (the tune layer maps them to Optuna samplers); the first is the default."""

PRUNERS = ("successive_halving", "hyperband", "median", "none")
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
    """How cheap a trial is; ``None`` keeps the base config's value (or the default schedule).

    ``rounds`` is the most rounds a trial runs; the pruner's first rung is ``min_rounds``
    (``None``: a ninth of ``rounds``, or the fidelity check's choice when
    ``tuner.calibrate`` is true). ``report_every`` is how often a trial reports validation to the pruner; the
    test-set period stays the run config's ``federation.eval_every``.
    """

    rounds: int | None = None
    min_rounds: int | None = None
    clients_per_round: int | None = None
    client_fraction: float | None = None
    data_fraction: float | None = None
    report_every: int | None = None
    eval_every: int | None = None
    """Old name of ``report_every`` (files written before the two meanings were split)."""

    def __post_init__(self) -> None:
        _optional_int(self.rounds, "rounds", 1)
        _optional_int(self.min_rounds, "min_rounds", 1)
        _optional_int(self.clients_per_round, "clients_per_round", 1)
        _optional_fraction(self.client_fraction, "client_fraction")
        _optional_fraction(self.data_fraction, "data_fraction")
        _optional_int(self.report_every, "report_every", 1)
        _optional_int(self.eval_every, "eval_every", 1)
        if self.eval_every is not None:
            if self.report_every is not None:
                raise SearchSpaceError(
                    "eval_every is the old name of report_every; give only report_every",
                    key="eval_every",
                )
            object.__setattr__(self, "report_every", self.eval_every)
            object.__setattr__(self, "eval_every", None)
        if self.clients_per_round is not None and self.client_fraction is not None:
            raise SearchSpaceError(
                "give clients_per_round or client_fraction, not both", key="client_fraction"
            )
        if None not in (self.rounds, self.min_rounds) and self.min_rounds > self.rounds:  # type: ignore[operator]
            raise SearchSpaceError(
                f"min_rounds ({self.min_rounds}) must be <= rounds ({self.rounds})",
                key="min_rounds",
            )

    _PATHS = {
        "rounds": "federation.rounds",
        "clients_per_round": "federation.clients_per_round",
        "client_fraction": "federation.client_fraction",
        "data_fraction": "data.fraction",
    }

    def overrides(self) -> dict[str, Any]:
        """The run-config values this fidelity sets, by dotted path."""
        out: dict[str, Any] = {}
        for name, path in self._PATHS.items():
            value = getattr(self, name)
            if value is not None:
                out[path] = float(value) if name.endswith("fraction") else value
        return out

    def setting_of(self, path: str) -> str | None:
        """The fidelity key that sets config ``path``, if any; either cohort key sets both
        cohort paths (a run takes ``clients_per_round`` or ``client_fraction``, not both)."""
        cohort = ("clients_per_round", "client_fraction")
        for name, p in self._PATHS.items():
            same = p == path or (name in cohort and path in (self._PATHS[c] for c in cohort))
            if same and getattr(self, name) is not None:
                return name
        return None

    def path_of(self, setting: str) -> str:
        """The run-config path a fidelity key sets, e.g. ``federation.rounds`` for rounds."""
        return self._PATHS[setting]

    def to_dict(self) -> dict[str, Any]:
        """All fields (``None`` where the base config or the default schedule decides)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "eval_every"}


@dataclass(frozen=True)
class TunerSpec:
    """Sampler, pruner, budget, promotion and seed of a study (``None``: the default)."""

    sampler: str = "tpe"
    pruner: str | None = None
    """``None``: successive halving over rounds, or none when the study has several
    objectives."""
    trials: int | None = None
    """New trials per ``fedhpo tune``; ``None``: as many as the budget allows (30 for
    multi-objective studies, the grid's size for the grid sampler)."""
    budget: float | None = None
    """Compute per ``fedhpo tune`` in full-run equivalents, promotion included; ``None``: 10
    when ``trials`` is not given either (single objective), else no budget."""
    timeout: float | None = None
    """Seconds, or ``None`` for no time limit."""
    seed: int = 0
    promote: int | None = None
    """Top trials re-run at full fidelity with more seeds (and the base config with them);
    ``None``: 0, see :data:`DEFAULT_PROMOTE`."""
    seeds: int = 2
    """Training seeds per promoted config (a trial's own full-fidelity run counts as one)."""
    calibrate: bool | None = None
    """Measure how well short runs rank configs before choosing the pruner's first rung
    (the fidelity check); ``None`` or false: no check, the first rung is a ninth of the rounds."""

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
        for key in ("budget", "timeout"):
            value = getattr(self, key)
            if value is not None and (not is_number(value) or value <= 0):
                raise SearchSpaceError(f"must be a number > 0 or null, got {value!r}", key=key)
        if not is_number(self.seed) or isinstance(self.seed, float) or self.seed < 0:
            raise SearchSpaceError(f"must be an integer >= 0, got {self.seed!r}", key="seed")
        _optional_int(self.promote, "promote", 0)
        _optional_int(self.seeds, "seeds", 1)
        if self.calibrate is not None and not isinstance(self.calibrate, bool):
            raise SearchSpaceError(
                f"must be true, false or null, got {self.calibrate!r}", key="calibrate"
            )

    def to_dict(self) -> dict[str, Any]:
        """All fields."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
