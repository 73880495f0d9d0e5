"""Evaluation: the fixed validation sample (all clients, or a sample for large federations)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

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


def test_a_model_with_dropout_scores_the_same_every_time() -> None:
    # dropout stayed on in evaluation: every validation of the same parameters differed
    data = make_dataset([3, 5, 0, 8, 4])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 4))
    params = {k: p.detach() for k, p in model.named_parameters()}
    ev = Evaluator(model, data, seed=0, val_clients=None)
    state = torch.get_rng_state()
    assert ev.validate(params) == ev.validate(params) == ev.validate(params)
    accs = ev.client_accuracies(params)
    assert accs == ev.client_accuracies(params)
    per_client = [data.client_val(c) for c in range(data.num_clients)]
    assert accs == tuple(evaluate(model, params, x, y).accuracy for x, y in per_client)
    assert torch.equal(torch.get_rng_state(), state)
    assert model.training and all(m.training for m in model)
