"""The barrier case (synchronous rounds, no heterogeneity) against numbers recorded from the
round-loop engine before the event engine replaced it: equal bit for bit."""

from __future__ import annotations

import pytest
import torch

from fedhpo.sim.engine import run_simulation
from tests.sim.fixtures.make_barrier_golden import CONFIGS, FIELDS, PATH, TRAINERS, config_of

GOLDEN = torch.load(PATH, weights_only=True)


@pytest.mark.parametrize("trainer", sorted(TRAINERS))
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_barrier_case_reproduces_the_recorded_run(name: str, trainer: str) -> None:
    want = GOLDEN[f"{name}/{trainer}"]
    result = run_simulation(config_of(name), trainer=TRAINERS[trainer])
    assert result.status == "completed"
    assert [[getattr(r, f) for f in FIELDS] for r in result.rounds] == want["rounds"]
    assert (result.test_loss, result.test_accuracy) == (want["test_loss"], want["test_accuracy"])
    assert list(result.client_accuracies) == want["client_accuracies"]
    assert list(result.params) == list(want["params"])
    for key, value in want["params"].items():
        assert torch.equal(result.params[key], value), key
