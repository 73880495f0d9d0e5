"""One trial: suggested parameters -> low-fidelity run -> recorded attributes and value(s)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import optuna

from fedhpo.config import DataConfig, RunConfig
from fedhpo.sim.data import FederatedDataset
from fedhpo.sim.datasets import build_dataset
from fedhpo.sim.engine import run_simulation
from fedhpo.sim.result import SimulationResult
from fedhpo.space import SearchSpace, suggest
from fedhpo.store import _records as rec

#: Metrics the engine reports every round; others can't drive pruning.
ROUND_METRICS = ("val_accuracy", "val_loss", "train_loss", "test_accuracy", "test_loss")

_DATASETS: dict[str, FederatedDataset] = {}


def cached_dataset(cfg: DataConfig) -> FederatedDataset:
    """Build a dataset once per process; trials differ in hyperparameters, not in data.

    The cache key ignores ``fraction``: the engine applies it to the shared tensors.
    """
    full = DataConfig(**{**cfg.__dict__, "fraction": 1.0})
    key = json.dumps(full.__dict__, default=lambda o: o.__dict__, sort_keys=True)
    if key not in _DATASETS:
        if len(_DATASETS) >= 4:
            _DATASETS.pop(next(iter(_DATASETS)))
        _DATASETS[key] = build_dataset(full)
    return _DATASETS[key]


class PruningCallback:
    """Reports the objective metric as an intermediate value each evaluation round and asks
    the pruner whether to stop (the only bridge between the engine and Optuna)."""

    def __init__(self, trial: optuna.Trial, metric: str, config: RunConfig, enabled: bool) -> None:
        self.trial = trial
        self.metric = metric
        self.every = config.federation.eval_every
        self.last = config.federation.rounds
        self.enabled = enabled and metric in ROUND_METRICS
        self.pruned_at: int | None = None

    def __call__(self, round_: int, metrics: Mapping[str, float]) -> bool:
        if not self.enabled or (round_ % self.every and round_ != self.last):
            return False
        value = metrics.get(self.metric)
        if value is None or not math.isfinite(value):
            return False
        self.trial.report(float(value), step=round_)
        if self.trial.should_prune():
            self.pruned_at = round_
            return True
        return False


def record_result(trial: optuna.Trial, result: SimulationResult) -> None:
    """Keep a trial's curves and final figures as user attributes."""
    curves: dict[str, list[Any]] = {"round": [r.round for r in result.rounds]}
    for key in rec.CURVE_KEYS:
        curves[key] = [getattr(r, key) for r in result.rounds]
    curves["test_accuracy"] = [r.test_accuracy for r in result.rounds]
    trial.set_user_attr(rec.CURVES, rec.clean(curves))
    trial.set_user_attr(rec.WALL_SECONDS, round(result.wall_seconds, 4))
    trial.set_user_attr(rec.BYTES_SENT, result.bytes_sent)
    trial.set_user_attr(rec.FINAL_METRICS, rec.clean(result.to_dict()["final"]))
    trial.set_user_attr(rec.CLIENT_ACCURACIES, rec.clean(list(result.client_accuracies)))


class Objective:
    """The callable Optuna optimizes: one low-fidelity federated run per trial."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.metrics = [o.metric for o in space.objectives]

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        try:
            return self._run(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr(rec.STATUS_REASON, f"error: {type(exc).__name__}: {exc}")
            raise

    def _run(self, trial: optuna.Trial) -> float | list[float]:
        params = suggest(self.space, trial)
        config = self.space.config_for(params)
        prune = PruningCallback(trial, self.metrics[0], config, not self.space.is_multi_objective)
        if not any(m.startswith("test_") for m in self.metrics):
            # Validation drives the search; the test set is scored once, at the end.
            config = config.with_values({"federation.eval_every": config.federation.rounds})
        trial.set_user_attr(rec.CONFIG, rec.clean(config.to_dict()))
        trial.set_user_attr(rec.FIDELITY, rec.clean(_fidelity_dict(config, prune.every)))
        result = run_simulation(config, cached_dataset(config.data), callbacks=[prune])
        record_result(trial, result)
        if result.status == "interrupted":
            raise KeyboardInterrupt
        if result.status == "diverged":
            trial.set_user_attr(rec.STATUS_REASON, result.reason)
            raise optuna.TrialPruned(result.reason)
        if prune.pruned_at is not None:
            reason = f"pruned at round {prune.pruned_at} by the pruner"
            trial.set_user_attr(rec.STATUS_REASON, reason)
            raise optuna.TrialPruned(reason)
        values = [result.metric(m) for m in self.metrics]
        bad = [m for m, v in zip(self.metrics, values, strict=True) if not math.isfinite(v)]
        if bad:
            reason = f"diverged: objective {', '.join(bad)} is not finite"
            trial.set_user_attr(rec.STATUS_REASON, reason)
            raise optuna.TrialPruned(reason)
        trial.set_user_attr(rec.STATUS_REASON, result.reason)
        return values[0] if len(values) == 1 else values


def _fidelity_dict(config: RunConfig, eval_every: int) -> dict[str, Any]:
    fed = config.federation
    return {
        "rounds": fed.rounds,
        "clients_per_round": fed.clients_per_round,
        "client_fraction": fed.client_fraction,
        "data_fraction": config.data.fraction,
        "eval_every": eval_every,
    }
