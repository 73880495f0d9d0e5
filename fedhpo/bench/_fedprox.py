"""The FedProx paper check: mu = 0 vs mu = 1 on Synthetic(1,1) and its IID variant."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fedhpo.config import RunConfig
from fedhpo.sim.client import evaluate
from fedhpo.sim.data import FederatedDataset
from fedhpo.sim.datasets import build_dataset
from fedhpo.sim.engine import run_simulation
from fedhpo.sim.models import build_model
from fedhpo.sim.threads import set_threads

VARIANTS = ("synthetic(1,1)", "iid")
MUS = (0.0, 1.0)


@dataclass(frozen=True)
class FedProxArm:
    """One run of the check: which data and mu, and the final global model's figures."""

    variant: str
    data_seed: int
    mu: float
    rounds: int
    status: str
    train_loss: float
    """Cross-entropy of the final global model over every client's training rows."""
    test_accuracy: float
    seconds: float


def arm_config(base: RunConfig, variant: str, data_seed: int, mu: float, rounds: int) -> RunConfig:
    """``base`` (e.g. configs/fedprox_synthetic_1_1.yaml) set to one arm of the check."""
    options = dict(base.data.options)
    if variant == "iid":
        options["iid"] = True
    else:
        options.update(alpha=1.0, beta=1.0, iid=False)
    return base.with_values(
        {
            "data.options": options,
            "data.seed": data_seed,
            "client.mu": mu,
            "federation.rounds": rounds,
        }
    )


def global_train_loss(config: RunConfig, dataset: FederatedDataset, params: dict) -> float:
    """Mean cross-entropy of ``params`` over all clients' training rows (the paper's curve)."""
    model = build_model(config.model, dataset.feature_shape, dataset.num_classes, 0)
    rows = [dataset.client_train(c) for c in range(dataset.num_clients)]
    x = torch.cat([r[0] for r in rows])
    y = torch.cat([r[1] for r in rows])
    return evaluate(model, params, x, y).loss


def run_arm(job: tuple[RunConfig, str, int, float, int]) -> FedProxArm:
    """Run one arm (in a worker process or here) with the default (fast) trainer."""
    base, variant, data_seed, mu, rounds = job
    set_threads(1)
    start = time.perf_counter()
    config = arm_config(base, variant, data_seed, mu, rounds)
    dataset = build_dataset(config.data)
    result = run_simulation(config, dataset)
    loss = global_train_loss(config, dataset, result.params) if result.params else float("nan")
    return FedProxArm(
        variant=variant,
        data_seed=data_seed,
        mu=mu,
        rounds=len(result.rounds),
        status=result.status,
        train_loss=loss,
        test_accuracy=result.test_accuracy,
        seconds=time.perf_counter() - start,
    )


def run_fedprox_check(
    base: RunConfig,
    data_seeds: Sequence[int] = (0, 1),
    rounds: int | None = None,
    jobs: int = 2,
    log: Callable[[str], None] | None = None,
) -> list[FedProxArm]:
    """Every (variant, data seed, mu) arm, spread over ``jobs`` spawned processes."""
    n_rounds = rounds or base.federation.rounds
    todo = [(base, v, s, mu, n_rounds) for v in VARIANTS for s in data_seeds for mu in MUS]
    arms: list[FedProxArm] = []
    results: Iterator[FedProxArm]
    if jobs <= 1:
        results = map(run_arm, todo)
        pool = None
    else:
        pool = multiprocessing.get_context("spawn").Pool(min(jobs, len(todo)))
        results = pool.imap_unordered(run_arm, todo)
    try:
        for arm in results:
            arms.append(arm)
            if log:
                log(
                    f"{arm.variant} seed {arm.data_seed} mu {arm.mu:g}: train loss "
                    f"{arm.train_loss:.4f}, test accuracy {arm.test_accuracy:.4f} "
                    f"({arm.seconds:.1f} s)"
                )
    finally:
        if pool is not None:
            pool.terminate()
    key = {v: i for i, v in enumerate(VARIANTS)}
    return sorted(arms, key=lambda a: (key[a.variant], a.data_seed, a.mu))


def summarize(arms: Sequence[FedProxArm]) -> list[dict[str, float | str | int]]:
    """Mean train loss and test accuracy per (variant, mu) over data seeds."""
    out: list[dict[str, float | str | int]] = []
    for variant in VARIANTS:
        for mu in MUS:
            group = [a for a in arms if a.variant == variant and a.mu == mu]
            if group:
                out.append(
                    {
                        "variant": variant,
                        "mu": mu,
                        "seeds": len(group),
                        "train_loss": float(np.mean([a.train_loss for a in group])),
                        "test_accuracy": float(np.mean([a.test_accuracy for a in group])),
                    }
                )
    return out
