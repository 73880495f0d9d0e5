"""The event engine's schedules: replayed trips give exactly the expected updates and
staleness; deadlines, partial work, over-selection, dropout; FedBuff in lock step is FedAvg."""

from __future__ import annotations

import math

import pytest
import torch

from fedhpo.config import config_from_dict
from fedhpo.sim.clock import ReplayClock
from fedhpo.sim.datasets import build_dataset
from fedhpo.sim.engine import run_simulation

TINY = {
    "data": {"name": "synthetic", "options": {"num_clients": 10, "dim": 8}},
    "model": {"name": "logreg"},
    "client": {"lr": 0.05, "batch_size": 8, "local_steps": 1},
    "federation": {"rounds": 3, "clients_per_round": 3, "eval_every": 1},
}
DATA = build_dataset(config_from_dict(TINY).data)


def tiny(**values):
    return config_from_dict(TINY).with_values(values)


def run(config, trips, **kw):
    return run_simulation(config, DATA, clock=ReplayClock(trips), record_events=True, **kw)


def timeline(result, kinds=("arrived", "cut", "update")):
    return [(e.time, e.kind, e.version, e.staleness) for e in result.events if e.kind in kinds]


FEDBUFF = {"federation.mode": "async", "fedbuff.concurrency": 3, "fedbuff.buffer_size": 2}


def test_replayed_fedbuff_updates_and_staleness() -> None:
    # seconds per step (one step each) of the 1st, 2nd, ... client dispatched:
    # t=0 sends d0 (5 s), d1 (1 s), d2 (3 s); d1 back at 1 -> d3 (4 s) sent at version 0;
    # d2 back at 3: update 1; d4 (1 s) sent; d4 back at 4 -> d5 (0.5 s); d5 back at 4.5:
    # update 2; d6 (2 s) sent; d0 and d3 (version 0) back at 5, two versions stale: update 3.
    trips = [(5.0, False), (1.0, False), (3.0, False), (4.0, False), (1.0, False)]
    trips += [(0.5, False), (2.0, False)]
    result = run(tiny(**FEDBUFF), trips)
    assert result.status == "completed"
    assert timeline(result) == [
        (1.0, "arrived", 0, 0),
        (3.0, "arrived", 0, 0),
        (3.0, "update", 1, None),
        (4.0, "arrived", 1, 0),
        (4.5, "arrived", 1, 0),
        (4.5, "update", 2, None),
        (5.0, "arrived", 0, 2),
        (5.0, "arrived", 0, 2),
        (5.0, "update", 3, None),
    ]
    assert [r.sim_seconds for r in result.rounds] == [3.0, 4.5, 5.0]
    assert [r.update_seconds for r in result.rounds] == [3.0, 1.5, 0.5]
    assert [r.staleness for r in result.rounds] == [0.0, 0.0, 2.0]
    assert [r.clients for r in result.rounds] == [2, 2, 2]


def test_replayed_fedbuff_cuts_updates_staler_than_the_limit() -> None:
    trips = [(5.0, False), (1.0, False), (3.0, False), (4.0, False), (1.0, False)]
    trips += [(0.5, False), (2.0, False), (1.0, False), (1.0, False)]
    result = run(tiny(**FEDBUFF, **{"fedbuff.max_staleness": 1}), trips)
    assert timeline(result)[-7:] == [
        (5.0, "arrived", 0, 2),
        (5.0, "cut", 0, None),
        (5.0, "arrived", 0, 2),
        (5.0, "cut", 0, None),
        (6.0, "arrived", 2, 0),
        (6.0, "arrived", 2, 0),
        (6.0, "update", 3, None),
    ]
    assert [r.cut for r in result.rounds] == [0, 0, 2]


def test_fedbuff_weighs_stale_updates_by_the_staleness_rule() -> None:
    trips = [(5.0, False), (1.0, False), (3.0, False), (4.0, False), (1.0, False)]
    trips += [(0.5, False), (2.0, False)]
    base = run(tiny(**FEDBUFF, **{"fedbuff.staleness": "constant"}), trips)
    poly = run(tiny(**FEDBUFF, **{"fedbuff.staleness": "polynomial"}), trips)
    # the first two updates have fresh clients only; the third is two versions stale
    for a, b in zip(base.rounds[:2], poly.rounds[:2], strict=True):
        assert a.val_loss == b.val_loss
    assert base.rounds[2].val_loss != poly.rounds[2].val_loss


def test_deadline_drops_stragglers() -> None:
    config = tiny(**{"federation.deadline": 7.0, "client.local_steps": 3})
    trips = [(1.0, False), (2.0, False), (3.0, False)] * 3  # arrivals 3, 6, 9 each round
    result = run(config, trips)
    assert [r.clients for r in result.rounds] == [2, 2, 2]
    assert [r.cut for r in result.rounds] == [1, 1, 1]
    assert [r.sim_seconds for r in result.rounds] == [7.0, 14.0, 21.0]
    assert timeline(result, ("arrived", "cut"))[:3] == [
        (3.0, "arrived", 0, 0),
        (6.0, "arrived", 0, 0),
        (7.0, "cut", 0, None),
    ]


def test_partial_work_fits_the_deadline() -> None:
    def partial(deadline: float):
        values = {"federation.deadline": deadline, "federation.stragglers": "partial"}
        values |= {"client.local_steps": 3, "federation.rounds": 1}
        return run(tiny(**values), [(1.0, False), (2.0, False), (3.0, False)])

    result = partial(7.0)
    # 3 steps of 1 s and 3 of 2 s fit; the slowest client fits 2 of its 3 s steps
    assert timeline(result, ("arrived",)) == [
        (3.0, "arrived", 0, 0),
        (6.0, "arrived", 0, 0),
        (6.0, "arrived", 0, 0),
    ]
    assert (result.rounds[0].clients, result.rounds[0].cut) == (3, 0)
    assert result.rounds[0].sim_seconds == 6.0
    # 8 s still fits 2 steps of the slowest client (same training), 9 s all 3
    assert partial(8.0).rounds[0].train_loss == result.rounds[0].train_loss
    assert partial(9.0).rounds[0].train_loss != result.rounds[0].train_loss


def test_over_selection_keeps_the_first_cohort_to_report() -> None:
    config = tiny(**{"federation.clients_per_round": 2, "federation.over_selection": 0.5})
    trips = [(3.0, False), (1.0, False), (2.0, False)] * 3
    result = run(config, trips)
    assert [(r.clients, r.cut) for r in result.rounds] == [(2, 1)] * 3
    assert [r.sim_seconds for r in result.rounds] == [2.0, 4.0, 6.0]
    assert [r.bytes_down // r.bytes_up for r in result.rounds] == [1, 1, 1]  # 3 down, 2 up
    assert result.rounds[0].bytes_down * 2 == result.rounds[0].bytes_up * 3


def test_dropped_clients_time_out() -> None:
    trips = [(1.0, False), (4.0, True), (2.0, False)] * 3
    result = run(tiny(), trips)
    assert [(r.clients, r.dropped) for r in result.rounds] == [(2, 1)] * 3
    assert [r.sim_seconds for r in result.rounds] == [4.0, 8.0, 12.0]  # waits for the timeout


def test_a_round_where_everybody_drops_keeps_the_model() -> None:
    trips = [(1.0, True)] * 3 + [(1.0, False)] * 6
    result = run(tiny(), trips)
    first = result.rounds[0]
    assert (first.clients, first.dropped, first.samples) == (0, 3, 0)
    assert result.status == "completed" and len(result.rounds) == 3


HETERO = {
    "data": {"name": "workload_w", "options": {"num_clients": 40}},
    "model": {"name": "mlp", "options": {"hidden": [16]}},
    "client": {"lr": 0.05, "batch_size": 8, "local_steps": 4, "momentum": 0.5},
    "federation": {"rounds": 4, "clients_per_round": 8},
}


def test_fedbuff_in_lock_step_is_synchronous_fedavg() -> None:
    sync = config_from_dict(HETERO)
    lock = sync.with_values(
        {"federation.mode": "async", "fedbuff.concurrency": 8, "fedbuff.buffer_size": 8}
    )
    a, b = run_simulation(sync), run_simulation(lock)
    assert [r.__dict__ | {"wall_seconds": 0} for r in a.rounds] == [
        r.__dict__ | {"wall_seconds": 0} for r in b.rounds
    ]
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)
    assert a.test_accuracy == b.test_accuracy


def test_time_budget_ends_the_run() -> None:
    trips = [(1.0, False)] * 9
    result = run(tiny(**{"federation.time_budget": 2.0}), trips)
    assert len(result.rounds) == 2 and result.status == "completed"
    assert "simulated-time budget" in result.reason


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_heterogeneous_runs_are_deterministic(mode: str) -> None:
    values = {
        "federation.mode": mode,
        "systems.speed_sigma": 1.0,
        "systems.bandwidth_sigma": 0.5,
        "systems.dropout": 0.2,
        "systems.window_period": 5.0,
        "systems.window_on": 0.8,
    }
    config = config_from_dict(HETERO).with_values(values)
    a, b = run_simulation(config, record_events=True), run_simulation(config, record_events=True)
    assert a.events == b.events and len(a.events) > 0
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)
    c = run_simulation(config.with_values({"seed": 1}), record_events=True)
    assert c.events != a.events


def test_target_accuracy_ends_the_run_and_times_it() -> None:
    config = config_from_dict(HETERO).with_values({"federation.rounds": 30})
    full = run_simulation(config)
    target = full.rounds[5].val_accuracy
    first = next(r for r in full.rounds if r.val_accuracy >= target)
    hit = run_simulation(config.with_values({"federation.target_accuracy": target}))
    assert hit.status == "completed" and "reached validation accuracy" in hit.reason
    assert len(hit.rounds) == first.round
    assert hit.time_to_accuracy == first.sim_seconds == hit.metric("time_to_accuracy")
    assert math.isnan(full.time_to_accuracy)
    assert hit.metric("sim_seconds") == hit.rounds[-1].sim_seconds


EVERYONE_DROPS = [(1.0, True)] * 3000  # a replay runs out (IndexError) where a run loops on


def sent(result) -> int:
    return sum(e.kind == "sent" for e in result.events)


def test_fedbuff_where_every_client_drops_out_stalls_instead_of_looping() -> None:
    # every dispatch dropped, FedBuff refilled its slots forever: `fedhpo run` hung
    result = run(tiny(**FEDBUFF), EVERYONE_DROPS)
    assert result.status == "stalled" and result.rounds == ()
    # at least 1,000 dispatches (10 per client of 10), stopped at the moment that passed it
    dropped = sum(e.kind == "dropped" for e in result.events)
    assert 1000 <= dropped < 1000 + 3
    assert result.reason == (
        f"stalled: no client update arrived in the last {dropped:,} dispatches: every client "
        "dropped out; check systems.dropout / systems.window_on / systems.window_period"
    )
    assert math.isfinite(result.test_accuracy)


def test_the_stall_limit_grows_with_the_federation() -> None:
    # 10 dispatches per client: a federation of 200 clients gets 2,000
    data = build_dataset(tiny(**{"data.options.num_clients": 200}).data)
    config = tiny(**FEDBUFF, **{"data.options.num_clients": 200})
    result = run_simulation(config, data, clock=ReplayClock(EVERYONE_DROPS), record_events=True)
    assert result.status == "stalled" and 2000 <= sent(result) - 3 < 2000 + 3


def test_fedbuff_past_its_time_budget_with_no_update_coming_stops() -> None:
    result = run(tiny(**FEDBUFF, **{"federation.time_budget": 5.0}), EVERYONE_DROPS)
    assert result.status == "stalled" and result.rounds == ()
    assert result.reason.startswith(
        "reached the simulated-time budget (5 s) with no update since the start: "
        "no client update arrived in the last 1,00"
    )


def test_fedbuff_past_its_time_budget_still_stops_at_its_next_update() -> None:
    # after the budget, 600 dispatches drop before two updates arrive: the run ends at that
    # update, as it did before runs without updates were stopped
    trips = [(1.0, False)] * 4 + [(1.0, True)] * 600 + [(1.0, False)] * 10
    values = {"federation.time_budget": 2.5, "federation.rounds": 10}
    result = run(tiny(**FEDBUFF, **values), trips)
    assert result.status == "completed" and "simulated-time budget" in result.reason
    assert [r.sim_seconds for r in result.rounds] == [1.0, 2.0, 202.0]


def test_rounds_where_nobody_reports_are_not_a_completed_run() -> None:
    # a deadline no client can make: 3 rounds "completed" with train loss nan and the
    # untrained model's accuracy, and nothing said
    result = run(tiny(**{"federation.deadline": 0.5}), [(1.0, False)] * 9)
    assert [(r.clients, r.cut) for r in result.rounds] == [(0, 3)] * 3
    assert result.status == "stalled"
    assert result.reason == (
        "no client update was used in any of the 3 rounds: every client missed the deadline; "
        "check federation.deadline"
    )
    dropped = run(tiny(), [(1.0, True)] * 9)
    assert dropped.status == "stalled" and dropped.reason == (
        "no client update was used in any of the 3 rounds: every client dropped out; "
        "check systems.dropout / systems.window_on / systems.window_period"
    )
    both = run(tiny(**{"federation.deadline": 0.5}), [(0.2, True), (1.0, False)] * 5)
    assert [(r.dropped, r.cut) for r in both.rounds] == [(2, 1), (1, 2), (2, 1)]
    assert both.reason.endswith(
        "every client dropped out or missed the deadline; check systems.dropout / "
        "systems.window_on / systems.window_period / federation.deadline"
    )


def test_synchronous_rounds_where_nobody_reports_stall() -> None:
    result = run(tiny(**{"federation.rounds": 2000}), EVERYONE_DROPS)
    assert result.status == "stalled" and len(result.rounds) == 334  # 3 clients a round
    assert "in the last 1,002 dispatches: every client dropped out" in result.reason


def test_over_selection_is_not_off_by_one_from_float_rounding() -> None:
    # (1 + 0.12) * 25 is 28.000000000000004 in floats: 29 clients were sent, not 28
    values = {"data.options.num_clients": 30, "federation.clients_per_round": 25}
    config = tiny(**values, **{"federation.over_selection": 0.12, "federation.rounds": 1})
    result = run_simulation(config, record_events=True)
    assert sent(result) == 28 and result.rounds[0].cut == 3
