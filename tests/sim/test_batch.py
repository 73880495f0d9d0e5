"""run_batch: several configs in one vectorized pass give each config's own run."""

from __future__ import annotations

import dataclasses
import math
import warnings

import pytest
import torch

from fedhpo.config import config_from_dict
from fedhpo.sim.batch import batch_key, run_batch
from fedhpo.sim.datasets import build_dataset
from fedhpo.sim.engine import run_simulation
from fedhpo.sim.result import SimulationResult

BASE = {
    "data": {"name": "synthetic", "options": {"num_clients": 12}},
    "model": {"name": "logreg"},
    "client": {"lr": 0.05, "batch_size": 8, "local_epochs": 2},
    "federation": {"rounds": 4, "clients_per_round": 4, "eval_every": 2},
}


@pytest.mark.parametrize("model", ["logreg", "mlp"])
def test_batched_runs_equal_single_runs(model: str) -> None:
    base = config_from_dict({**BASE, "model": {"name": model}})
    configs = [
        base.with_values({"client.lr": 0.01, "client.mu": 0.5}),
        base.with_values({"client.lr": 0.1, "client.momentum": 0.9, "client.weight_decay": 1e-3}),
        base.with_values(
            {"client.lr": 1e6, "server.lr": 1e30}
        ),  # diverges; must not disturb the others
        base.with_values({"server.optimizer": "adam", "server.lr": 0.05}),
    ]
    dataset = build_dataset(base.data)
    single = [run_simulation(c, dataset) for c in configs]
    batched = run_batch(configs, dataset)
    assert [r.status for r in single] == [r.status for r in batched]
    assert "diverged" in {r.status for r in batched} and "completed" in {r.status for r in batched}
    for a, b in zip(single, batched, strict=True):
        assert a.reason == b.reason
        assert [r.val_accuracy for r in a.rounds] == pytest.approx(
            [r.val_accuracy for r in b.rounds]
        )
        assert [r.steps for r in a.rounds] == [r.steps for r in b.rounds]
        assert a.steps == b.steps and a.unrecorded_steps == b.unrecorded_steps
        assert a.test_accuracy == pytest.approx(b.test_accuracy, nan_ok=True)
        if a.status == "completed":
            for k in a.params:
                torch.testing.assert_close(a.params[k], b.params[k], rtol=1e-5, atol=1e-6)


def test_only_configs_with_one_schedule_share_a_pass() -> None:
    base = config_from_dict(BASE)
    assert batch_key(base) == batch_key(base.with_values({"client.lr": 1.0, "server.lr": 0.5}))
    assert batch_key(base) != batch_key(base.with_values({"client.batch_size": 16}))
    assert batch_key(base) != batch_key(base.with_values({"seed": 1}))
    # different schedules still run (one by one) and come back in order
    configs = [base, base.with_values({"client.batch_size": 16}), base.with_values({"seed": 1})]
    results = run_batch(configs)
    assert [r.seed for r in results] == [0, 0, 1]
    assert results[0].rounds != results[1].rounds


def test_one_dataset_is_refused_for_configs_with_other_data() -> None:
    # it was used for every config, so a config with 20 clients ran on the first's 12
    base = config_from_dict(BASE)
    other = base.with_values({"data.options": {"num_clients": 20}})
    with pytest.raises(ValueError, match="2 different data sections"):
        run_batch([base, other], build_dataset(base.data))
    # a different fraction is the same data (the engine cuts it)
    half = base.with_values({"data.fraction": 0.5})
    results = run_batch([base, half], build_dataset(base.data))
    assert results[1].rounds[0].samples < results[0].rounds[0].samples
    # without a dataset, each config's own is built
    assert [r.num_clients for r in run_batch([base, other])] == [12, 20]


@pytest.mark.usefixtures("linear_route")
@pytest.mark.parametrize("model", ["logreg", "mlp"])
def test_a_run_gets_the_same_numbers_alone_and_beside_any_others(model: str) -> None:
    """Bit for bit: what the quality benchmark's cache and replay rely on (a grid point's run
    is reused whatever pass computed it). Client momentum, weight decay and mu differ
    between the configs, so the pass takes each of them per client."""
    base = config_from_dict({**BASE, "model": {"name": model}})
    configs = [
        base.with_values({"client.lr": 0.01, "client.mu": 0.5}),
        base.with_values({"client.lr": 0.1, "client.momentum": 0.9, "client.weight_decay": 1e-3}),
        base.with_values({"client.lr": 0.3, "server.optimizer": "adam", "server.lr": 0.05}),
    ]
    dataset = build_dataset(base.data)
    alone = run_simulation(configs[0], dataset)
    for batch, at in ((configs[:2], 0), (configs, 0), (configs[::-1], 2)):
        with_others = run_batch(batch, dataset)[at]
        assert _numbers(with_others) == _numbers(alone)
        assert all(torch.equal(alone.params[k], with_others.params[k]) for k in alone.params)


def _numbers(result: SimulationResult) -> list[dict[str, object]]:
    """A run's per-round records but for the wall-clock seconds."""
    return [{**dataclasses.asdict(r), "wall_seconds": None} for r in result.rounds]


def assert_same_result(alone: SimulationResult, batched: SimulationResult) -> None:
    """Every field of the two results equal, bit for bit, but for wall-clock seconds."""
    for f in dataclasses.fields(SimulationResult):
        a, b = getattr(alone, f.name), getattr(batched, f.name)
        if f.name == "wall_seconds":
            continue
        if f.name == "rounds":
            assert _numbers(batched) == _numbers(alone), f.name
        elif f.name == "params":
            assert list(a) == list(b), f.name
            assert all(torch.equal(a[k], b[k]) for k in a), f.name
        elif isinstance(a, float) and math.isnan(a):
            assert isinstance(b, float) and math.isnan(b), (f.name, a, b)
        else:
            assert a == b, (f.name, a, b)


@pytest.mark.usefixtures("linear_route")
def test_each_run_stops_at_its_target_accuracy_as_alone() -> None:
    # run_batch ignored federation.target_accuracy: every run "ran all" its rounds, with
    # time_to_accuracy nan and other final metrics than the run alone
    base = config_from_dict(
        {**BASE, "federation": {**BASE["federation"], "rounds": 6, "target_accuracy": 0.84}}
    )
    configs = [
        base.with_values({"client.lr": 0.01, "client.mu": 0.5}),  # reaches it in round 6
        base.with_values({"client.lr": 0.1, "client.momentum": 0.9}),  # in round 4
        base.with_values({"client.lr": 1e6, "server.lr": 1e30}),  # diverges
        base.with_values({"client.lr": 0.001}),  # never
    ]
    dataset = build_dataset(base.data)
    alone = [run_simulation(c, dataset) for c in configs]
    reasons = [r.reason for r in alone]
    assert reasons[:2] == [
        "reached validation accuracy 0.84 in round 6",
        "reached validation accuracy 0.84 in round 4",
    ]
    assert reasons[2].startswith("diverged") and reasons[3] == "ran all 6 rounds"
    for single, batched in zip(alone, run_batch(configs, dataset), strict=True):
        assert_same_result(single, batched)


def test_a_model_with_dropout_runs_batched_as_alone(dropout_model: str) -> None:
    # the fast path learns in round 1 that vmap cannot take dropout; round 2's stacked
    # call then raised "train_cohort_stacked needs a vectorizable model"
    client = {**BASE["client"], "local_steps": 5}  # the reference loop is slow: few steps
    base = config_from_dict({**BASE, "model": {"name": dropout_model}, "client": client})
    configs = [base, base.with_values({"client.lr": 0.2, "client.momentum": 0.5})]
    dataset = build_dataset(base.data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # falls back to the reference loop
        alone = [run_simulation(c, dataset) for c in configs]
        batched = run_batch(configs, dataset)
    for single, with_others in zip(alone, batched, strict=True):
        assert_same_result(single, with_others)
