"""The barrier case (synchronous rounds, no heterogeneity) against numbers recorded from the
round-loop engine before the event engine replaced it: equal bit for bit to the recording of
this CPU kind, capability and vendor (float rounding differs between kinds; see
``fixtures/make_barrier_golden``), the fast trainer on its torch route; on its numpy route
(``fast.NUMERICS`` 2, which rounds differently) equal to float rounding."""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytest
import torch

from fedhpo.sim import fast
from fedhpo.sim._fast_numpy import NarrowSteps
from fedhpo.sim.engine import run_simulation
from fedhpo.sim.result import SimulationResult
from tests.sim.fixtures.make_barrier_golden import (
    CONFIGS,
    FIELDS,
    TRAINERS,
    config_of,
    cpu_kind,
    recordings,
)

RECORDINGS = recordings()


def _mismatch(result: SimulationResult, want: dict[str, Any]) -> str | None:
    """Where ``result`` differs from a recording, bit for bit (None: nowhere)."""
    rounds = [[getattr(r, f) for f in FIELDS] for r in result.rounds]
    if rounds != want["rounds"]:
        return "per-round metrics"
    if (result.test_loss, result.test_accuracy) != (want["test_loss"], want["test_accuracy"]):
        return "test metrics"
    if list(result.client_accuracies) != want["client_accuracies"]:
        return "client accuracies"
    if list(result.params) != list(want["params"]):
        return "parameter names"
    bad = [k for k, v in want["params"].items() if not torch.equal(result.params[k], v)]
    return f"parameters {bad}" if bad else None


def _close(result: SimulationResult, want: dict[str, Any]) -> bool:
    rounds = [[getattr(r, f) for f in FIELDS] for r in result.rounds]
    pairs = zip(rounds, want["rounds"], strict=True)
    flat = [(a, b) for ra, rb in pairs for a, b in zip(ra, rb, strict=True)]
    numbers = all(
        a == b or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-5))
        for a, b in flat
    )
    params = all(
        torch.allclose(result.params[k], v, rtol=1e-4, atol=1e-6) for k, v in want["params"].items()
    )
    return numbers and params


@pytest.mark.parametrize("trainer", sorted(TRAINERS))
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_barrier_case_reproduces_the_recorded_run(
    name: str, trainer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the recordings predate the fast trainer's narrow steps in numpy (fast.NUMERICS 2):
    # bit for bit is checked on its torch route, the numpy route to float rounding below
    monkeypatch.setattr(fast, "NARROW_ROWS", 0)
    result = run_simulation(config_of(name), trainer=TRAINERS[trainer])
    assert result.status == "completed"
    key = f"{name}/{trainer}"
    if cpu_kind() in RECORDINGS:
        assert _mismatch(result, RECORDINGS[cpu_kind()][key]) is None
        return
    # no recording of this kind: it may round as a recorded kind does, or differently
    if any(_mismatch(result, data[key]) is None for data in RECORDINGS.values()):
        return
    first = next(iter(RECORDINGS.values()))[key]
    assert _close(result, first), "the run differs from the recorded one beyond float rounding"
    warnings.warn(
        f"no barrier recording for CPU kind {cpu_kind()} (recorded: {', '.join(RECORDINGS)}): "
        "checked to float rounding only; record one from the old engine "
        "(tests/sim/fixtures/make_barrier_golden.py)",
        stacklevel=1,
    )


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_fast_trainers_numpy_steps_match_the_recording_to_float_rounding(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    firsts: list[int] = []  # per group, the first step taken in numpy

    def counted(self: NarrowSteps, first_step: int, check_every: int) -> int:
        firsts.append(first_step)
        return run(self, first_step, check_every)

    run = NarrowSteps.run
    monkeypatch.setattr(NarrowSteps, "run", counted)
    result = run_simulation(config_of(name), trainer=TRAINERS["fast"])
    want = RECORDINGS.get(cpu_kind(), next(iter(RECORDINGS.values())))[f"{name}/fast"]
    assert result.status == "completed" and _close(result, want)
    assert firsts and set(firsts) == {0}  # small cohorts: every step in numpy


def test_the_recordings_of_two_cpu_kinds_differ_only_by_rounding() -> None:
    # what the per-kind recordings stand for: the same runs, rounded differently
    assert len(RECORDINGS) >= 2
    assert all(kind.count("-") == 1 for kind in RECORDINGS)  # capability-vendor
    first = next(iter(RECORDINGS.values()))
    for kind, data in RECORDINGS.items():
        assert data.keys() - {"_platform"} == first.keys() - {"_platform"}, kind
        for key in first.keys() - {"_platform"}:
            a, b = first[key]["params"], data[key]["params"]
            assert all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a), (kind, key)
