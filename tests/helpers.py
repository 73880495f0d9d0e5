"""Shared test inputs: a tiny generated federation and a tiny lr/mu search space."""

from __future__ import annotations

BASE = """\
data:
  name: synthetic
  options: {alpha: 1.0, beta: 1.0, num_clients: 12}
model: {name: logreg}
client: {lr: 0.05, batch_size: 16, local_epochs: 1}
federation: {rounds: 12, clients_per_round: 4, eval_every: 1}
seed: 0
"""

LR_MU = """\
  client.lr: {type: float, low: 1.0e-4, high: 1.0, log: true}
  client.mu: {type: float, low: 0.0, high: 1.0}
"""
