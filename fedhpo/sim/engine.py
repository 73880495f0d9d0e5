"""The one engine: a loop over timestamped events; the synchronous round is the barrier case.

The server sends models (dispatches), clients' updates arrive or never do, deadlines pass;
a schedule (:mod:`fedhpo.sim.schedules`: synchronous rounds, or asynchronous buffered
aggregation) decides, event by event, when to dispatch and which
arrived updates make a server update. The engine owns everything else: the clock's timing,
training (every dispatch made at the current model version is trained in one call, when the
server is about to move on), aggregation, the server step, evaluation, records, callbacks.
The algorithms it calls are pure functions of tensors.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from fedhpo.config import RunConfig
from fedhpo.sim._run import Run, StopRun
from fedhpo.sim.client import evaluate
from fedhpo.sim.clock import Clock, SystemsClock
from fedhpo.sim.cohort import REFERENCE
from fedhpo.sim.data import FederatedDataset
from fedhpo.sim.datasets import build_dataset
from fedhpo.sim.evaluation import Evaluator, client_accuracies
from fedhpo.sim.events import Event
from fedhpo.sim.fast import FAST
from fedhpo.sim.models import build_model
from fedhpo.sim.names import check_names
from fedhpo.sim.result import RoundRecord, SimulationResult, Status
from fedhpo.sim.sampling import STREAM_INIT, derive_seed
from fedhpo.sim.schedules import Barrier, FedBuff
from fedhpo.sim.server import make_server_optimizer
from fedhpo.sim.work import Trainer

#: ``on_round_end(round, metrics) -> stop?``: the only bridge from a run to the outside
#: (progress bars, pruning), called after every server update. Return True to stop the run.
RoundCallback = Callable[[int, Mapping[str, float]], "bool | None"]

#: The trainer :func:`run_simulation` uses unless told otherwise: the vectorized fast path,
#: which itself falls back to the reference loop for models it cannot vectorize.
default_trainer: Trainer = FAST

__all__ = [
    "FAST",
    "REFERENCE",
    "RoundCallback",
    "Trainer",
    "default_trainer",
    "finish_run",
    "run_simulation",
]


def run_simulation(
    config: RunConfig,
    dataset: FederatedDataset | None = None,
    *,
    callbacks: Sequence[RoundCallback] = (),
    trainer: Trainer = default_trainer,
    clock: Clock | None = None,
    record_events: bool = False,
) -> SimulationResult:
    """Run one federated training as ``config`` says and return its result.

    ``dataset`` may be passed to reuse one already built (its ``data`` section must match
    ``config.data``, with ``config.data.fraction`` applied, as :func:`build_dataset` does, or
    with fraction 1, and the engine applies it: :meth:`FederatedDataset.at_fraction`). Ctrl-C ends the run after the
    current server update with status ``interrupted``, keeping the updates done. A run in
    which no client update arrives (all drop out or miss the deadline) ends ``stalled``.
    ``trainer`` trains each dispatch (default: :data:`default_trainer`; pass
    :data:`REFERENCE` for the plain per-client loop). ``clock`` replaces the one ``config.systems`` describes (e.g. a
    :class:`~fedhpo.sim.clock.ReplayClock`); ``record_events`` keeps the event log.
    """
    start = time.perf_counter()
    check_names(config)  # an unknown model or optimizer fails before the data is built
    if dataset is None:
        dataset = build_dataset(config.data)
    else:
        dataset = dataset.at_fraction(config.data.fraction)
    seed = config.seed
    model = build_model(
        config.model, dataset.feature_shape, dataset.num_classes, derive_seed(seed, STREAM_INIT)
    )
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    model_bytes = 4 * sum(p.numel() for p in params.values())
    run = Run(
        config=config,
        dataset=dataset,
        model=model,
        trainer=trainer,
        clock=clock or SystemsClock(config.systems, dataset.num_clients, model_bytes, seed),
        evaluator=Evaluator(model, dataset, seed, config.federation.val_clients),
        server=make_server_optimizer(config.server),
        params=params,
        callbacks=callbacks,
        log=[] if record_events else None,
        start=start,
    )
    cohort = config.federation.cohort_size(dataset.num_clients)
    schedule = FedBuff(run, cohort) if config.federation.mode == "async" else Barrier(run, cohort)
    try:
        schedule.start()
        while len(run.queue):
            t, due = run.queue.pop_due()
            for kind, dispatch, tag in due:
                run.handle(schedule, t, kind, dispatch, tag)
            schedule.after()
            run.check_stall()
    except StopRun:
        pass
    except KeyboardInterrupt:
        run.status, run.reason = "interrupted", f"interrupted after {len(run.records)} rounds"
    run.check_used()
    return _finish(run)


def _finish(run: Run) -> SimulationResult:
    return finish_run(
        run.config,
        run.dataset,
        run.model,
        run.params,
        run.records,
        run.evaluator.val_ids,
        run.status,
        run.reason,
        run.start,
        tuple(run.log or ()),
        run.time_to_accuracy,
        run.steps,  # trained since the last recorded update: a diverged round's
    )


def finish_run(
    config: RunConfig,
    dataset: FederatedDataset,
    model: nn.Module,
    params: dict[str, Tensor],
    records: Sequence[RoundRecord],
    val_ids: np.ndarray,
    status: Status,
    reason: str,
    start: float,
    events: tuple[Event, ...] = (),
    time_to_accuracy: float = math.nan,
    unrecorded_steps: int = 0,
) -> SimulationResult:
    """The result of a run: final test metrics and per-client accuracies of the last good
    parameters (none if they are not finite; no per-client ones after Ctrl-C)."""
    finite = all(bool(torch.isfinite(p).all()) for p in params.values())
    test = evaluate(model, params, dataset.test_x, dataset.test_y) if finite else None
    client_acc: tuple[float, ...] = ()
    if finite and status != "interrupted":
        client_acc = client_accuracies(model, dataset, val_ids, params)
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
        events=events,
        time_to_accuracy=time_to_accuracy,
        unrecorded_steps=unrecorded_steps,
    )
