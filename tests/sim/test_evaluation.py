"""Evaluation: the fixed validation sample (all clients, or a sample for large federations)."""

from __future__ import annotations

import numpy as np
import torch

from fedhpo.config import ModelConfig
from fedhpo.sim.client import evaluate
from fedhpo.sim.evaluation import LARGE_FEDERATION, Evaluator, validation_sample
from fedhpo.sim.models import build_model
from tests.sim.test_fast import make_dataset


def test_small_federations_validate_on_every_client() -> None:
    assert validation_sample(0, 50, None).tolist() == list(range(50))
    assert len(validation_sample(0, 50, 7)) == 7


def test_large_federations_validate_on_a_fixed_sample() -> None:
    ids = validation_sample(3, 100_000, None)
    assert len(ids) == LARGE_FEDERATION and len(set(ids.tolist())) == LARGE_FEDERATION
    assert np.array_equal(ids, validation_sample(3, 100_000, None))
    assert not np.array_equal(ids, validation_sample(4, 100_000, None))
    assert len(validation_sample(3, 100_000, 100_000)) == 100_000  # asked for all: all


def test_evaluator_pools_the_validation_clients_rows() -> None:
    data = make_dataset([3, 5, 0, 8])  # each client has one validation row
    model = build_model(ModelConfig("logreg"), (6,), 4, seed=0)
    params = {k: p.detach() for k, p in model.named_parameters()}
    ev = Evaluator(model, data, seed=0, val_clients=2)
    rows = [data.client_val(c) for c in ev.val_ids.tolist()]
    x, y = torch.cat([r[0] for r in rows]), torch.cat([r[1] for r in rows])
    assert ev.validate(params) == evaluate(model, params, x, y)
    assert len(ev.client_accuracies(params)) == 2
    assert ev.test(params) == evaluate(model, params, data.test_x, data.test_y)
