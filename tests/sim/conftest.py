"""Fixtures of the simulator tests."""

from __future__ import annotations

import pytest
from torch import nn

from fedhpo.sim import fast, models

#: NARROW_ROWS for each route of the fast trainer's Linear(+ReLU) stacks: every step in
#: torch, every step in numpy, and a group's wide steps in torch handing its narrow ones
#: (at most 16 rows: 4 clients at batch size 4) to numpy.
ROUTES = {"torch": 0, "numpy": 10**9, "handoff": 16}


@pytest.fixture(params=sorted(ROUTES))
def linear_route(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once per route of the fast trainer's linear kernel."""
    monkeypatch.setattr(fast, "NARROW_ROWS", ROUTES[request.param])
    return str(request.param)


@pytest.fixture
def dropout_model(monkeypatch: pytest.MonkeyPatch) -> str:
    """The name of a plugin-style model with dropout (an MLP of 16 hidden units), registered
    in a copy of the model registry that the test's end throws away."""
    monkeypatch.setattr(models, "_MODELS", dict(models._MODELS))

    @models.register_model("test_drop_mlp")
    def drop_mlp(input_shape: tuple[int, ...], num_classes: int, *, width: int = 16):
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(input_shape[0], width),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(width, num_classes),
        )

    return "test_drop_mlp"
