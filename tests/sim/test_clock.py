"""The clock: client hardware from distributions or a trace, timing arithmetic,
availability, and (Hypothesis) the engine's event log is ordered in time."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedhpo.config import SystemsConfig, config_from_dict
from fedhpo.errors import ConfigError
from fedhpo.sim.clock import Profile, SystemsClock
from fedhpo.sim.engine import run_simulation
from tests.sim.test_schedules import DATA, TINY

CLIENTS = np.arange(6)


def test_timing_from_speed_bandwidth_and_latency(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("speed,bandwidth\n2.0,1000\n0.5,4000\n")
    cfg = SystemsConfig(sample_seconds=0.01, latency=0.1, trace=str(trace))
    clock = SystemsClock(cfg, num_clients=3, model_bytes=2000, seed=0)
    p = clock.profile(np.array([0, 1, 2]), np.array([4, 4, 8]), 1)
    # client 2 reuses the trace's first row (rows are cycled)
    assert p.download.tolist() == pytest.approx([2.1, 0.6, 2.1])
    assert p.upload.tolist() == p.download.tolist()
    assert p.step_seconds.tolist() == pytest.approx([0.02, 0.08, 0.04])
    assert p.arrival(10.0, np.array([5, 0, 1])).tolist() == pytest.approx([14.3, 11.2, 14.24])


def test_lognormal_hardware_is_seeded() -> None:
    cfg = SystemsConfig(speed_sigma=1.0, bandwidth_sigma=0.5, bandwidth=1e6)
    a, b = SystemsClock(cfg, 4000, 100, seed=3), SystemsClock(cfg, 4000, 100, seed=3)
    assert np.array_equal(a.speed, b.speed) and np.array_equal(a.bandwidth, b.bandwidth)
    assert not np.array_equal(a.speed, SystemsClock(cfg, 4000, 100, seed=4).speed)
    assert np.median(a.speed) == pytest.approx(1.0, rel=0.1)
    assert np.std(np.log(a.speed)) == pytest.approx(1.0, rel=0.1)
    assert np.median(a.bandwidth) == pytest.approx(1e6, rel=0.1)
    same = SystemsClock(SystemsConfig(), 10, 100, seed=0)
    assert same.speed.tolist() == [1.0] * 10


def test_dropout_and_windows() -> None:
    always = SystemsClock(SystemsConfig(), 6, 10, seed=0)
    assert not always.drops(CLIENTS, 0.0, np.full(6, 1e9), 1).any()
    half = SystemsClock(SystemsConfig(dropout=0.5), 2000, 10, seed=0)
    drawn = half.drops(np.arange(2000), 0.0, np.zeros(2000), 7)
    assert drawn.mean() == pytest.approx(0.5, abs=0.05)
    assert np.array_equal(drawn, half.drops(np.arange(2000), 0.0, np.zeros(2000), 7))
    windows = SystemsClock(SystemsConfig(window_period=10.0, window_on=0.5), 6, 10, seed=0)
    into = np.mod(windows.phase[CLIENTS], 1.0) * 10.0
    # a trip of 6 s never fits an online window of 5 s; a zero-length one fits when online
    assert windows.drops(CLIENTS, 0.0, np.full(6, 6.0), 1).all()
    assert windows.drops(CLIENTS, 0.0, np.zeros(6), 1).tolist() == (into >= 5.0).tolist()


@pytest.mark.parametrize(
    ("text", "match", "line"),
    [
        ("speed,bw\n1,2\n", "needs columns speed and bandwidth", 1),
        ("speed,bandwidth\n1,2\n-1,3\n", "speed must be a number > 0, got '-1'", 3),
        ("speed,bandwidth\n1,x\n", "bandwidth must be a number > 0", 2),
        ("speed,bandwidth\n", "no rows", None),
        # said "must be a number > 0": it is a number, and too large
        ("speed,bandwidth\n1,2\n1e400,3\n", "speed must be a finite number, got '1e400'", 3),
        ("speed,bandwidth\n1,inf\n", "bandwidth must be a finite number, got 'inf'", 2),
        # extra fields were silently dropped
        ("speed,bandwidth\n1,2\n3,4,5\n", "row has 3 fields; the header has 2", 3),
    ],
)
def test_bad_traces_are_clear_errors(tmp_path: Path, text: str, match: str, line) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        SystemsClock(SystemsConfig(trace=str(trace)), 3, 10, 0)
    assert info.value.key == "systems.trace" and info.value.line == line
    assert str(info.value).startswith(f"{trace}")
    missing = tmp_path / "missing.csv"
    with pytest.raises(ConfigError, match="trace file not found") as info:
        SystemsClock(SystemsConfig(trace=str(missing)), 3, 10, 0)
    assert str(missing) in str(info.value)


def test_a_trace_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    # a UnicodeDecodeError traceback from `fedhpo run --set systems.trace=bin.csv`
    trace = tmp_path / "bin.csv"
    trace.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not a UTF-8 text file") as info:
        SystemsClock(SystemsConfig(trace=str(trace)), 3, 10, 0)
    assert info.value.key == "systems.trace" and str(trace) in str(info.value)
    assert "\n" not in str(info.value)


def test_a_trace_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    # spreadsheet exports start with a BOM: "needs columns speed and bandwidth; found
    # ['\ufeffspeed', 'bandwidth']"
    trace = tmp_path / "bom.csv"
    trace.write_bytes("speed,bandwidth\n2.0,1000\n".encode("utf-8-sig"))
    clock = SystemsClock(SystemsConfig(trace=str(trace)), 2, 10, 0)
    assert clock.speed.tolist() == [2.0, 2.0] and clock.bandwidth.tolist() == [1000.0] * 2


def centis(high: int):
    return st.integers(0, high * 100).map(lambda i: i / 100)


@given(download=centis(5), upload=centis(5), step=centis(3), seconds=centis(100))
def test_steps_within_fit_the_time(download, upload, step, seconds) -> None:
    p = Profile(np.array([download]), np.array([step]), np.array([upload]))
    fit = int(p.steps_within(seconds)[0])
    if fit < 0:
        assert download + upload > seconds
    elif step > 0:
        assert p.arrival(0.0, np.array([fit]))[0] <= seconds * (1 + 1e-12) + 1e-12
        assert p.arrival(0.0, np.array([fit + 1]))[0] > seconds - 1e-9


SCHEDULES = st.fixed_dictionaries(
    {
        "federation.mode": st.sampled_from(["sync", "async"]),
        "systems.speed_sigma": st.floats(0, 2),
        "systems.dropout": st.floats(0, 0.6),
        "systems.latency": st.floats(0, 0.5),
        "fedbuff.buffer_size": st.integers(1, 4),
        "fedbuff.concurrency": st.integers(1, 5),
        "fedbuff.max_staleness": st.none() | st.integers(0, 3),
        "seed": st.integers(0, 2**16),
    }
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=SCHEDULES, deadline=st.none() | st.floats(0.05, 2.0), over=st.floats(0, 1))
def test_event_log_is_ordered_in_time_and_consistent(values, deadline, over) -> None:
    if values["federation.mode"] == "sync":
        values = values | {"federation.deadline": deadline, "federation.over_selection": over}
    config = config_from_dict(TINY).with_values(values | {"federation.rounds": 4})
    result = run_simulation(config, DATA, record_events=True)
    times = [e.time for e in result.events]
    assert times == sorted(times) and all(math.isfinite(t) for t in times)
    assert sum(e.kind == "update" for e in result.events) == len(result.rounds) == 4
    sent = sum(e.kind == "sent" for e in result.events)
    settled = sum(e.kind in ("arrived", "dropped") for e in result.events)
    assert settled <= sent
    assert all(e.staleness >= 0 for e in result.events if e.kind == "arrived")
    if values.get("fedbuff.max_staleness") is not None and values["federation.mode"] == "async":
        used = [e for e in result.events if e.kind == "arrived"]
        cut = sum(e.kind == "cut" for e in result.events)
        assert sum(r.clients for r in result.rounds) == len(used) - cut
    sims = [r.sim_seconds for r in result.rounds]
    assert sims == sorted(sims)
    assert sum(r.update_seconds for r in result.rounds) == pytest.approx(sims[-1])
