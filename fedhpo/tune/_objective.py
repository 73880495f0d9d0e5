"""One trial: suggested parameters -> a (low-fidelity) run -> recorded attributes and value(s)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna

from fedhpo.config import DataConfig, RunConfig
from fedhpo.metrics import ROUND_METRICS
from fedhpo.sim.batch import run_batch
from fedhpo.sim.data import FederatedDataset
from fedhpo.sim.datasets import build_dataset
from fedhpo.sim.engine import RoundCallback, run_simulation
from fedhpo.sim.result import SimulationResult
from fedhpo.space import SearchSpace, suggest
from fedhpo.store import records as rec
from fedhpo.tune._budget import BudgetGuard
from fedhpo.tune._fidelity import Schedule, judged_after, schedule, trial_config

#: ``simulate(config, callbacks) -> result``: how a trial's run is made. The default runs
#: the simulator; the quality benchmark replays recorded runs instead.
Simulate = Callable[[RunConfig, Sequence[RoundCallback]], SimulationResult]
#: ``simulate_batch(configs) -> results``: full runs of several trials in one pass.
SimulateBatch = Callable[[Sequence[RunConfig]], list[SimulationResult]]

_DATASETS: dict[str, FederatedDataset] = {}


def cached_dataset(cfg: DataConfig) -> FederatedDataset:
    """Build a dataset once per process; trials differ in hyperparameters, not in data.

    The cache key ignores ``fraction``: the engine applies it to the shared tensors.
    """
    key = _data_key(cfg)
    if key not in _DATASETS:
        if len(_DATASETS) >= 4:
            _DATASETS.pop(next(iter(_DATASETS)))
        _DATASETS[key] = build_dataset(cfg.whole())
    return _DATASETS[key]


def _data_key(cfg: DataConfig) -> str:
    """What a dataset is built from (:meth:`DataConfig.whole`), as a cache key."""
    return json.dumps(cfg.whole().__dict__, default=lambda o: o.__dict__, sort_keys=True)


def simulate(config: RunConfig, callbacks: Sequence[RoundCallback] = ()) -> SimulationResult:
    """The default :data:`Simulate`: a real run on the (cached) dataset."""
    return run_simulation(config, cached_dataset(config.data), callbacks=callbacks)


def simulate_batch(configs: Sequence[RunConfig]) -> list[SimulationResult]:
    """The default :data:`SimulateBatch`: full runs sharing one vectorized pass where they
    can (:func:`~fedhpo.sim.batch.run_batch`), each on its own (cached) dataset."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(configs):
        groups.setdefault(_data_key(c.data), []).append(i)
    results: dict[int, SimulationResult] = {}
    for members in groups.values():
        batch = [configs[i] for i in members]
        out = run_batch(batch, cached_dataset(batch[0].data))
        results.update(zip(members, out, strict=True))
    return [results[i] for i in range(len(configs))]


class PruningCallback:
    """Reports the objective metric to the pruner every ``report_every`` rounds (and at the
    last round) and asks whether to stop: the only bridge between the engine and Optuna."""

    def __init__(
        self,
        trial: optuna.Trial,
        metric: str,
        sched: Schedule,
        enabled: bool,
        may_stop: bool = True,
        guard: BudgetGuard | None = None,
    ) -> None:
        self.trial = trial
        self.metric = metric
        self.every = sched.report_every
        self.last = sched.rounds
        self.enabled = enabled and metric in ROUND_METRICS
        self.may_stop = may_stop
        """False: report and let the pruner rank the trial, but never stop it (calibration
        runs: they set the bar at each rung for the trials after them)."""
        self.guard = guard if may_stop else None
        """Stops the trial once the study's step budget is spent (see ``BudgetGuard``)."""
        self.judged_after = judged_after(sched)
        self.pruned_at: int | None = None
        self.reason: str | None = None
        """The pruner's (or the guard's) account of why it stopped the trial."""
        self.budget_stop: dict[str, Any] | None = None
        """Where the guard stopped the trial (recorded as ``records.BUDGET_STOP``); ``judged``:
        after the pruner's last rung and a third of the rounds, so the leaderboard may compare
        it with the complete trials at that round."""

    def __call__(self, round_: int, metrics: Mapping[str, float]) -> bool:
        reported = self._report(round_, metrics)
        spent = self.guard is not None and self.guard(round_, int(metrics.get("steps", 0)))
        if spent and round_ < self.last:  # a run in its last round completes
            self.pruned_at, self.reason = round_, self.guard.reason  # type: ignore[union-attr]
            judged = self.enabled and round_ > self.judged_after
            self.budget_stop = {"round": round_, "rounds": self.last, "judged": judged}
            return True
        if reported and self.trial.should_prune() and self.may_stop:
            self.pruned_at = round_
            reasons = getattr(self.trial.study.pruner, "reasons", {})
            self.reason = reasons.get(self.trial.number)
            return True
        return False

    def _report(self, round_: int, metrics: Mapping[str, float]) -> bool:
        """Report the metric on a reporting round; True if reported."""
        if not self.enabled or (round_ % self.every and round_ != self.last):
            return False
        value = metrics.get(self.metric)
        if value is None or not math.isfinite(value):
            return False
        self.trial.report(float(value), step=round_)
        return True


def record_result(trial: optuna.Trial, result: SimulationResult) -> None:
    """Keep a trial's curves, final figures and compute as user attributes."""
    curves: dict[str, list[Any]] = {"round": [r.round for r in result.rounds]}
    for key in rec.CURVE_KEYS:
        curves[key] = [getattr(r, key) for r in result.rounds]
    curves["test_accuracy"] = [r.test_accuracy for r in result.rounds]
    trial.set_user_attr(rec.CURVES, rec.clean(curves))
    trial.set_user_attr(rec.WALL_SECONDS, round(result.wall_seconds, 4))
    trial.set_user_attr(rec.BYTES_SENT, result.bytes_sent)
    trial.set_user_attr(rec.STEPS, result.steps)
    trial.set_user_attr(rec.FINAL_METRICS, rec.clean(result.to_dict()["final"]))
    trial.set_user_attr(rec.CLIENT_ACCURACIES, rec.clean(list(result.client_accuracies)))


class Objective:
    """The callable Optuna optimizes: one federated run per trial, pruned on validation.

    ``min_rounds`` is the calibrated first rung (when the space leaves it open). A trial
    enqueued for calibration runs at full fidelity and is never pruned.
    """

    def __init__(
        self,
        space: SearchSpace,
        min_rounds: int | None = None,
        run: Simulate = simulate,
        run_batch: SimulateBatch | None = None,
    ) -> None:
        self.space = space
        self.metrics = [o.metric for o in space.objectives]
        self.schedule = schedule(space, min_rounds)
        self.run = run
        self.run_batch = run_batch

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        try:
            return self._run(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr(rec.STATUS_REASON, f"error: {type(exc).__name__}: {exc}")
            raise

    def run_many(self, trials: Sequence[optuna.Trial]) -> list[BaseException | Any]:
        """Several trials in one batched pass (``run_batch``), each trial's value(s) or the
        exception it ended with. Only for trials no pruner may stop (the fidelity check's
        full runs): a batched pass has no per-round callbacks, so their validation curves
        are reported to the pruner once the pass is done."""
        if self.run_batch is None or len(trials) < 2:
            out: list[BaseException | Any] = []
            for trial in trials:  # one by one; an interrupt ends them all (they run again)
                out.append(_outcome(self, trial) if not out or not _stop(out[-1]) else out[-1])
            return out
        prepared = [self._prepare(t) for t in trials]
        try:
            results = self.run_batch([config for config, _ in prepared])
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            for trial in trials:
                trial.set_user_attr(rec.STATUS_REASON, f"error: {type(exc).__name__}: {exc}")
            return [exc] * len(trials)
        out = []
        for trial, (_, prune), result in zip(trials, prepared, results, strict=True):
            for record in result.rounds:
                prune(record.round, {k: v for k, v in record.__dict__.items() if v is not None})
            try:
                out.append(self._finish(trial, result, prune))
            except (optuna.TrialPruned, KeyboardInterrupt) as exc:
                out.append(exc)
            except Exception as exc:
                trial.set_user_attr(rec.STATUS_REASON, f"error: {type(exc).__name__}: {exc}")
                out.append(exc)
        return out

    def _run(self, trial: optuna.Trial) -> float | list[float]:
        config, prune = self._prepare(trial)
        return self._finish(trial, self.run(config, [prune]), prune)

    def _prepare(self, trial: optuna.Trial) -> tuple[RunConfig, PruningCallback]:
        params = suggest(self.space, trial)
        sched = self.schedule
        calibrating = bool(trial.user_attrs.get(rec.CALIBRATION))
        if calibrating:
            sched = dataclasses.replace(sched, rounds=sched.full_rounds)
        config = trial_config(self.space, params, sched)
        enabled = not self.space.is_multi_objective
        guard = None if calibrating else BudgetGuard.of(trial)
        prune = PruningCallback(trial, self.metrics[0], sched, enabled, not calibrating, guard)
        trial.set_user_attr(rec.CONFIG, rec.clean(config.to_dict()))
        trial.set_user_attr(rec.FIDELITY, rec.clean(_fidelity_dict(config, sched)))
        return config, prune

    def _finish(
        self, trial: optuna.Trial, result: SimulationResult, prune: PruningCallback
    ) -> float | list[float]:
        record_result(trial, result)
        if result.status == "interrupted":
            raise KeyboardInterrupt
        if result.status in ("diverged", "stalled"):  # no value to rank
            trial.set_user_attr(rec.STATUS_REASON, result.reason)
            raise optuna.TrialPruned(result.reason)
        if prune.budget_stop is not None:
            trial.set_user_attr(rec.BUDGET_STOP, prune.budget_stop)
        if prune.pruned_at is not None:
            reason = prune.reason or f"pruned at round {prune.pruned_at} by the pruner"
            trial.set_user_attr(rec.STATUS_REASON, reason)
            raise optuna.TrialPruned(reason)
        values = [result.metric(m) for m in self.metrics]
        bad = [m for m, v in zip(self.metrics, values, strict=True) if not math.isfinite(v)]
        if bad == ["time_to_accuracy"]:
            reason = (
                f"did not reach federation.target_accuracy in {len(result.rounds)} rounds "
                f"({result.sim_seconds:.4g} simulated s)"
            )
            trial.set_user_attr(rec.STATUS_REASON, reason)
            raise optuna.TrialPruned(reason)
        if bad:
            reason = f"diverged: objective {', '.join(bad)} is not finite"
            trial.set_user_attr(rec.STATUS_REASON, reason)
            raise optuna.TrialPruned(reason)
        trial.set_user_attr(rec.STATUS_REASON, result.reason)
        return values[0] if len(values) == 1 else values


def _stop(outcome: Any) -> bool:
    return isinstance(outcome, KeyboardInterrupt)


def _outcome(objective: Objective, trial: optuna.Trial) -> BaseException | Any:
    try:
        return objective(trial)
    except (Exception, KeyboardInterrupt) as exc:
        return exc


def _fidelity_dict(config: RunConfig, sched: Schedule) -> dict[str, Any]:
    """What the trial ran: its run config's cohort and data share, the schedule's rungs."""
    fed = config.federation
    return {
        "rounds": fed.rounds,
        "full_rounds": sched.full_rounds,
        "min_rounds": sched.min_rounds,
        "report_every": sched.report_every,
        "clients_per_round": fed.clients_per_round,
        "client_fraction": fed.client_fraction,
        "data_fraction": config.data.fraction,
        "test_every": fed.eval_every,
    }
