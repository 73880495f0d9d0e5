"""Tuning in simulated time: time-to-accuracy, accuracy vs simulated time, FedBuff keys."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fedhpo.errors import SearchSpaceError
from fedhpo.space import load_space
from fedhpo.store import records as rec
from fedhpo.tune import tune

BASE = """\
data:
  name: synthetic
  options: {alpha: 1.0, beta: 1.0, num_clients: 12}
model: {name: logreg}
client: {lr: 0.05, batch_size: 16, local_epochs: 1}
federation: {mode: async, rounds: 40, clients_per_round: 4, target_accuracy: 0.3}
systems: {speed_sigma: 1.0, dropout: 0.1}
fedbuff: {concurrency: 4, buffer_size: 2}
seed: 0
"""

PARAMS = """\
  client.lr: {type: float, low: 1.0e-4, high: 0.5, log: true}
  fedbuff.buffer_size: {type: int, low: 1, high: 4}
  fedbuff.staleness: {type: categorical, choices: [constant, polynomial, hinge]}
"""


def write_space(tmp_path: Path, objective: str, base: str = BASE) -> Path:
    (tmp_path / "base.yaml").write_text(base)
    path = tmp_path / "space.yaml"
    path.write_text(
        f"base: base.yaml\nobjective: {objective}\n"
        "tuner: {sampler: random, pruner: none, trials: 6, seed: 0, promote: 0}\n"
        f"params:\n{PARAMS}"
    )
    return path


def test_time_to_accuracy_is_the_simulated_time_to_the_target(tmp_path, storage) -> None:
    space = write_space(tmp_path, "{metric: time_to_accuracy}")
    study = tune(space, storage=storage, study="t", log=lambda _: None)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert complete, "some trial should reach 0.3 validation accuracy"
    for t in complete:
        curves = t.user_attrs[rec.CURVES]
        pairs = zip(curves["sim_seconds"], curves["val_accuracy"], strict=True)
        reached = [s for s, a in pairs if a >= 0.3]
        assert t.value == reached[0] == curves["sim_seconds"][-1]  # the run stopped there
        assert "reached validation accuracy 0.3" in t.user_attrs[rec.STATUS_REASON]
    for t in pruned:
        assert t.user_attrs[rec.STATUS_REASON].startswith(
            "did not reach federation.target_accuracy"
        ) or t.user_attrs[rec.STATUS_REASON].startswith("diverged")


def test_accuracy_against_simulated_time_is_a_pareto_front(tmp_path, storage) -> None:
    objective = "[{metric: val_accuracy}, {metric: sim_seconds}]"
    space = write_space(tmp_path, objective, BASE.replace(", target_accuracy: 0.3", ""))
    study = tune(space, storage=storage, study="p", log=lambda _: None)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert done and all(t.values[1] > 0 and math.isfinite(t.values[1]) for t in done)
    for t in done:
        assert t.values[1] == t.user_attrs[rec.CURVES]["sim_seconds"][-1]


def test_time_to_accuracy_needs_a_target(tmp_path) -> None:
    space = write_space(
        tmp_path, "{metric: time_to_accuracy}", BASE.replace(", target_accuracy: 0.3", "")
    )
    with pytest.raises(SearchSpaceError, match="needs federation.target_accuracy"):
        load_space(space)


def test_the_shipped_fedbuff_space_tunes_fedbuff_for_time_to_accuracy() -> None:
    space = load_space(Path(__file__).resolve().parents[2] / "searchspaces" / "async_fedbuff.yaml")
    assert space.objectives[0].metric == "time_to_accuracy"
    assert set(space.names) == {
        "client.lr",
        "fedbuff.buffer_size",
        "fedbuff.concurrency",
        "fedbuff.staleness_exponent",
    }
    base = space.base
    assert base.federation.mode == "async" and base.federation.target_accuracy is not None
    assert base.systems.speed_sigma > 0 and base.systems.dropout > 0
