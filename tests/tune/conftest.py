"""Tiny search spaces over tiny generated federations, so whole studies run in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

BASE = """\
data:
  name: synthetic
  options: {alpha: 1.0, beta: 1.0, num_clients: 12}
model: {name: logreg}
client: {lr: 0.05, batch_size: 16, local_epochs: 1}
federation: {rounds: 12, clients_per_round: 4, eval_every: 1}
seed: 0
"""


@pytest.fixture
def make_space(tmp_path: Path):
    """Write a base config and a space file with the given params/tuner/objective YAML."""

    def make(
        params: str,
        tuner: str = "{sampler: random, pruner: none, trials: 4, seed: 0}",
        objective: str = "{metric: val_accuracy, direction: maximize}",
        fidelity: str = "{rounds: 6}",
        name: str = "space",
    ) -> Path:
        (tmp_path / "base.yaml").write_text(BASE)
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            f"base: base.yaml\nobjective: {objective}\nfidelity: {fidelity}\n"
            f"tuner: {tuner}\nparams:\n{params}"
        )
        return path

    return make


@pytest.fixture
def storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


LR_MU = """\
  client.lr: {type: float, low: 1.0e-4, high: 1.0, log: true}
  client.mu: {type: float, low: 0.0, high: 1.0}
"""
