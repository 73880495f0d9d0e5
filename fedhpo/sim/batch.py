"""Several full runs in one pass: configs that share a seed and a batch schedule train together.

A grid of client learning rates, proximal weights or server settings needs one federated run
per point, and on heterogeneous clients a run's time goes into the long tail of one big
client stepping alone. :func:`run_batch` trains the cohorts of all configs of a round in one
vectorized call (:func:`~fedhpo.sim.fast.train_cohort_stacked`, one row per (config, client)),
so that tail is paid once, and then aggregates, steps the server and evaluates each config on
its own. Each result is what :func:`~fedhpo.sim.engine.run_simulation` returns for that config
(to float rounding: the per-client settings are applied with tensor rather than scalar
arithmetic), simulated time included; each run stops where it would alone (divergence, or
``federation.target_accuracy`` reached: status, reason and time to accuracy as the engine's)
while the others train on. Configs that cannot share a pass run one by one, and
so do configs whose schedule is not the plain barrier (deadlines, over-selection, dropout,
availability windows, asynchronous aggregation, a time budget, uniform weights).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fedhpo.config import RunConfig
from fedhpo.sim.client import ClientUpdate, evaluate
from fedhpo.sim.clock import SystemsClock
from fedhpo.sim.data import FederatedDataset
from fedhpo.sim.datasets import build_dataset
from fedhpo.sim.engine import finish_run, run_simulation
from fedhpo.sim.evaluation import validation_sample
from fedhpo.sim.fast import PER_CLIENT_HP, fast_path, train_cohort_stacked
from fedhpo.sim.models import build_model
from fedhpo.sim.result import RoundRecord, SimulationResult, Status
from fedhpo.sim.sampling import STREAM_INIT, derive_seed, sample_cohort
from fedhpo.sim.server import ServerOptimizer, aggregate, make_server_optimizer

__all__ = ["batch_key", "run_batch"]


def batch_key(config: RunConfig) -> str:
    """Configs with equal keys can share a pass: equal but for per-client SGD settings
    (lr, momentum, weight decay, mu) and the server section."""
    data = config.to_dict()
    for k in PER_CLIENT_HP:
        data["client"].pop(k)
    data.pop("server")
    return repr(data)


@dataclass
class _Run:
    """One config's state inside a batched pass."""

    config: RunConfig
    params: dict[str, torch.Tensor]
    server: ServerOptimizer[Any]
    state: Any
    reason: str
    records: list[RoundRecord] = field(default_factory=list)
    status: Status = "completed"
    done: bool = False
    """Stopped (diverged, or reached ``federation.target_accuracy``): trains no more."""
    time_to_accuracy: float = math.nan
    unrecorded_steps: int = 0


def _lock_step(config: RunConfig) -> bool:
    """Whether the run's schedule is the plain barrier: every sampled client reports."""
    fed, systems = config.federation, config.systems
    return (
        fed.mode == "sync"
        and fed.deadline is None
        and fed.over_selection == 0
        and fed.time_budget is None
        and fed.weighting == "samples"
        and systems.dropout == 0
        and systems.window_period is None
    )


def run_batch(
    configs: Sequence[RunConfig], dataset: FederatedDataset | None = None
) -> list[SimulationResult]:
    """Full runs of ``configs`` (results in the same order), batching those that can share
    a pass (:func:`batch_key`) when the model is vectorizable; no callbacks.

    ``dataset``, if given, is every config's data (built from their common ``data``
    section, as :func:`~fedhpo.sim.engine.run_simulation` takes it); configs whose data
    differ but for ``fraction`` are then a ValueError: give each its own call."""
    if dataset is not None:
        sections = {repr(c.data.whole()) for c in configs}
        if len(sections) > 1:
            raise ValueError(
                f"run_batch got one dataset for configs with {len(sections)} different data "
                "sections; call it once per data section"
            )
    results: dict[int, SimulationResult] = {}
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(configs):
        groups.setdefault(batch_key(c), []).append(i)
    for members in groups.values():
        batch = [configs[i] for i in members]
        out = _run_group(batch, dataset) if len(batch) > 1 else None
        if out is None:
            out = [run_simulation(c, dataset) for c in batch]
        results.update(zip(members, out, strict=True))
    return [results[i] for i in range(len(configs))]


def _run_group(
    configs: list[RunConfig], dataset: FederatedDataset | None
) -> list[SimulationResult] | None:
    """One pass over configs sharing a batch key; None if the model is not vectorizable."""
    start = time.perf_counter()
    first = configs[0]
    if dataset is None:
        dataset = build_dataset(first.data)
    else:
        dataset = dataset.at_fraction(first.data.fraction)
    seed, fed = first.seed, first.federation
    model = build_model(
        first.model, dataset.feature_shape, dataset.num_classes, derive_seed(seed, STREAM_INIT)
    )
    if fast_path(model) == "reference" or not _lock_step(first):
        return None
    init = {n: p.detach().clone() for n, p in model.named_parameters()}
    runs = []
    for c in configs:
        server = make_server_optimizer(c.server)
        runs.append(_Run(c, dict(init), server, server.init(init), f"ran all {fed.rounds} rounds"))
    cohort_size = fed.cohort_size(dataset.num_clients)
    model_bytes = 4 * sum(p.numel() for p in init.values())
    val_ids = validation_sample(seed, dataset.num_clients, fed.val_clients)
    val_x, val_y = dataset.val_rows(val_ids)
    clock = SystemsClock(first.systems, dataset.num_clients, model_bytes, seed)
    now = 0.0
    for r in range(1, fed.rounds + 1):
        live = [run for run in runs if not run.done]
        if not live:
            break
        cohort = sample_cohort(seed, r, dataset.num_clients, cohort_size)
        updates = _train_round(model, live, dataset, cohort, r)
        steps = np.max([[u.steps for u in ups] for ups in updates], axis=0)
        batch = np.full(len(cohort), first.client.batch_size)
        then, now = now, float(clock.profile(cohort, batch, r).arrival(now, steps).max())
        for run, ups in zip(live, updates, strict=True):
            _step(run, ups, r, model, (val_x, val_y), dataset, model_bytes, (start, now, then))
    return [_finish(run, dataset, model, val_ids, start) for run in runs]


def _finish(
    run: _Run, dataset: FederatedDataset, model: torch.nn.Module, val_ids: np.ndarray, start: float
) -> SimulationResult:
    return finish_run(
        run.config, dataset, model, run.params, run.records, val_ids, run.status, run.reason,
        start, time_to_accuracy=run.time_to_accuracy, unrecorded_steps=run.unrecorded_steps,
    )  # fmt: skip


def _train_round(
    model: torch.nn.Module,
    live: list[_Run],
    dataset: FederatedDataset,
    cohort: np.ndarray,
    round_: int,
) -> list[list[ClientUpdate]]:
    """Every live config's cohort in one stacked call; the updates split back per config."""
    k = len(cohort)
    stacked = {
        name: torch.stack([run.params[name] for run in live]).repeat_interleave(k, 0)
        for name in live[0].params
    }
    per_client = {
        hp: np.repeat([float(getattr(run.config.client, hp)) for run in live], k)
        for hp in PER_CLIENT_HP
    }
    config = live[0].config
    ups = train_cohort_stacked(
        model, stacked, dataset, np.tile(cohort, len(live)), config.client,
        per_client, config.seed, round_,
    )  # fmt: skip
    return [ups[i * k : (i + 1) * k] for i in range(len(live))]


def _step(
    run: _Run,
    updates: list[ClientUpdate],
    r: int,
    model: torch.nn.Module,
    val: tuple[torch.Tensor, torch.Tensor],
    dataset: FederatedDataset,
    model_bytes: int,
    times: tuple[float, float, float],
) -> None:
    """Aggregate, step the server, evaluate and record one config's round, and stop the
    run where the engine would (divergence, ``federation.target_accuracy``)."""
    samples = sum(u.num_samples for u in updates)
    steps = sum(u.steps for u in updates)
    train_loss = sum(u.train_loss * u.num_samples for u in updates) / max(samples, 1)
    if not all(u.finite for u in updates) or not math.isfinite(train_loss):
        _stop(run, "diverged", f"diverged: non-finite training loss in round {r}")
        run.unrecorded_steps = steps
        return
    params, state = run.server.step(run.params, aggregate(updates), run.state)
    if not all(bool(torch.isfinite(p).all()) for p in params.values()):
        _stop(run, "diverged", f"diverged: non-finite model parameters in round {r}")
        run.unrecorded_steps = steps
        return  # the result keeps the last good parameters, as the engine's does
    last_good, run.params, run.state = run.params, params, state
    fed = run.config.federation
    start, now, then = times
    v = evaluate(model, params, *val)
    test = None
    if r % fed.eval_every == 0 or r == fed.rounds:
        test = evaluate(model, params, dataset.test_x, dataset.test_y)
    run.records.append(
        RoundRecord(
            round=r,
            train_loss=train_loss,
            val_loss=v.loss,
            val_accuracy=v.accuracy,
            test_loss=test.loss if test else None,
            test_accuracy=test.accuracy if test else None,
            clients=len(updates),
            samples=samples,
            bytes_up=model_bytes * len(updates),
            bytes_down=model_bytes * len(updates),
            wall_seconds=time.perf_counter() - start,
            steps=steps,
            sim_seconds=now,
            update_seconds=now - then,
        )
    )
    if v.count and not math.isfinite(v.loss):
        run.params = last_good  # as the engine: the last good parameters, not the blown-up
        _stop(run, "diverged", f"diverged: non-finite validation loss in round {r}")
        return
    target = fed.target_accuracy
    if target is not None and v.count and v.accuracy >= target:
        run.time_to_accuracy = now
        _stop(run, "completed", f"reached validation accuracy {target:g} in round {r}")


def _stop(run: _Run, status: Status, reason: str) -> None:
    run.status, run.reason, run.done = status, reason, True
