"""Fixtures of the simulator tests."""

from __future__ import annotations

import pytest

from fedhpo.sim import fast

#: NARROW_ROWS for each route of the fast trainer's Linear(+ReLU) stacks: every step in
#: torch, every step in numpy, and a group's wide steps in torch handing its narrow ones
#: (at most 16 rows: 4 clients at batch size 4) to numpy.
ROUTES = {"torch": 0, "numpy": 10**9, "handoff": 16}


@pytest.fixture(params=sorted(ROUTES))
def linear_route(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once per route of the fast trainer's linear kernel."""
    monkeypatch.setattr(fast, "NARROW_ROWS", ROUTES[request.param])
    return str(request.param)
