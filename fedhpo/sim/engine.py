"""The round loop: sample a cohort, train it, aggregate, step the server, evaluate, call back.

The engine is the only place in the simulator that sequences work; the algorithms it calls
(local update, aggregation, server optimizer) are pure functions of tensors.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from fedhpo.config import RunConfig
from fedhpo.sim.aggregate import Contributions, aggregate
from fedhpo.sim.client import evaluate
from fedhpo.sim.cohort import REFERENCE
from fedhpo.sim.data import FederatedDataset
from fedhpo.sim.datasets import build_dataset
from fedhpo.sim.fast import FAST
from fedhpo.sim.models import build_model
from fedhpo.sim.result import RoundRecord, SimulationResult, Status
from fedhpo.sim.sampling import (
    STREAM_INIT,
    derive_seed,
    sample_cohort,
    validation_clients,
)
from fedhpo.sim.server import make_server_optimizer
from fedhpo.sim.work import Trainer, Work, train_work

#: ``on_round_end(round, metrics) -> stop?``: the only bridge from a run to the outside
#: (progress bars, pruning). Return True to stop the run after this round.
RoundCallback = Callable[[int, Mapping[str, float]], "bool | None"]

Params = dict[str, torch.Tensor]

#: The trainer :func:`run_simulation` uses unless told otherwise: the vectorized fast path,
#: which itself falls back to the reference loop for models it cannot vectorize.
default_trainer: Trainer = FAST

__all__ = ["FAST", "REFERENCE", "RoundCallback", "Trainer", "default_trainer", "run_simulation"]


def _finite(params: Params) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in params.values())


def run_simulation(
    config: RunConfig,
    dataset: FederatedDataset | None = None,
    *,
    callbacks: Sequence[RoundCallback] = (),
    trainer: Trainer = default_trainer,
) -> SimulationResult:
    """Run one federated training as ``config`` says and return its result.

    ``dataset`` may be passed to reuse one already built (its ``data`` section must match
    ``config.data``; ``config.data.fraction`` is applied here). Ctrl-C ends the run after the
    current client with status ``interrupted``, keeping the rounds done. ``trainer`` trains
    each round's cohort (default: :data:`default_trainer`; pass :data:`REFERENCE` for the
    plain per-client loop).
    """
    start = time.perf_counter()
    if dataset is None:
        dataset = build_dataset(config.data)
    elif config.data.fraction < 1.0:
        dataset = dataset.with_fraction(config.data.fraction)
    seed = config.seed
    fed = config.federation
    model = build_model(
        config.model, dataset.feature_shape, dataset.num_classes, derive_seed(seed, STREAM_INIT)
    )
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    server = make_server_optimizer(config.server)
    state = server.init(params)
    cohort_size = fed.cohort_size(dataset.num_clients)
    model_bytes = 4 * sum(p.numel() for p in params.values())
    val_ids = validation_clients(seed, dataset.num_clients, fed.val_clients)
    val_x, val_y = dataset.val_rows(val_ids)

    records: list[RoundRecord] = []
    status: Status = "completed"
    reason = f"ran all {fed.rounds} rounds"
    try:
        for r in range(1, fed.rounds + 1):
            cohort = sample_cohort(seed, r, dataset.num_clients, cohort_size)
            work = Work(cohort, params, config.client, seed, np.full(len(cohort), r), r - 1)
            result = train_work(trainer, model, dataset, work)
            samples = int(result.num_samples.sum())
            pairs = zip(result.losses.tolist(), result.num_samples.tolist(), strict=True)
            train_loss = sum(loss * n for loss, n in pairs) / max(samples, 1)
            if not result.finite.all() or not math.isfinite(train_loss):
                status, reason = "diverged", f"diverged: non-finite training loss in round {r}"
                break
            contrib = Contributions(result.deltas, result.num_samples, np.zeros(len(work)))
            params, state = server.step(params, aggregate(contrib), state)
            if not _finite(params):
                status, reason = "diverged", f"diverged: non-finite model parameters in round {r}"
                break
            val = evaluate(model, params, val_x, val_y)
            test = None
            if r % fed.eval_every == 0 or r == fed.rounds:
                test = evaluate(model, params, dataset.test_x, dataset.test_y)
            record = RoundRecord(
                round=r,
                train_loss=train_loss,
                val_loss=val.loss,
                val_accuracy=val.accuracy,
                test_loss=test.loss if test else None,
                test_accuracy=test.accuracy if test else None,
                clients=len(result),
                samples=samples,
                bytes_up=model_bytes * len(result),
                bytes_down=model_bytes * len(result),
                wall_seconds=time.perf_counter() - start,
            )
            records.append(record)
            if val.count and not math.isfinite(val.loss):
                status, reason = "diverged", f"diverged: non-finite validation loss in round {r}"
                break
            metrics = {k: v for k, v in record.__dict__.items() if v is not None}
            if any([bool(cb(r, metrics)) for cb in callbacks]) and r < fed.rounds:
                status, reason = "stopped", f"stopped by a callback after round {r}"
                break
    except KeyboardInterrupt:
        status, reason = "interrupted", f"interrupted after {len(records)} rounds"

    return _finish(config, dataset, model, params, records, val_ids, status, reason, start)


def _finish(
    config: RunConfig,
    dataset: FederatedDataset,
    model: nn.Module,
    params: Params,
    records: list[RoundRecord],
    val_ids: np.ndarray,
    status: Status,
    reason: str,
    start: float,
) -> SimulationResult:
    """Final test metrics and per-client accuracies of the last good parameters."""
    finite = _finite(params)
    test = evaluate(model, params, dataset.test_x, dataset.test_y) if finite else None
    client_acc: tuple[float, ...] = ()
    if finite and status != "interrupted":
        accs = []
        for c in val_ids.tolist():
            x, y = dataset.client_val(c)
            if len(y):
                accs.append(evaluate(model, params, x, y).accuracy)
        client_acc = tuple(accs)
    return SimulationResult(
        status=status,
        reason=reason,
        rounds=tuple(records),
        test_loss=test.loss if test else math.nan,
        test_accuracy=test.accuracy if test else math.nan,
        client_accuracies=client_acc,
        num_clients=dataset.num_clients,
        seed=config.seed,
        data_seed=config.data.seed,
        wall_seconds=time.perf_counter() - start,
        params=params,
    )
