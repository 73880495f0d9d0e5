"""The round loop: determinism, callbacks, divergence, interruption, metrics bookkeeping."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fedhpo.config import config_from_dict
from fedhpo.sim.datasets import build_dataset
from fedhpo.sim.engine import run_simulation
from fedhpo.sim.sampling import sample_cohort, validation_clients

SMALL = {
    "data": {"name": "synthetic", "options": {"num_clients": 10}},
    "model": {"name": "mlp", "options": {"hidden": [8]}},
    "client": {"lr": 0.05, "batch_size": 16, "momentum": 0.5},
    "federation": {"rounds": 4, "clients_per_round": 3, "eval_every": 2},
}


def small(**values):
    return config_from_dict(SMALL).with_values(values)


def test_same_seed_same_result_bit_for_bit() -> None:
    a, b = run_simulation(small()), run_simulation(small())
    assert [r.train_loss for r in a.rounds] == [r.train_loss for r in b.rounds]
    assert [r.val_loss for r in a.rounds] == [r.val_loss for r in b.rounds]
    assert a.test_loss == b.test_loss
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)


def test_other_seed_other_result() -> None:
    a, b = run_simulation(small()), run_simulation(small(seed=1))
    assert a.test_loss != b.test_loss


def test_records_and_bookkeeping() -> None:
    config = small()
    dataset = build_dataset(config.data)
    result = run_simulation(config, dataset)
    assert result.status == "completed"
    assert [r.round for r in result.rounds] == [1, 2, 3, 4]
    # test metrics every eval_every rounds and at the end
    assert [r.test_accuracy is not None for r in result.rounds] == [False, True, False, True]
    assert result.rounds[-1].test_loss == pytest.approx(result.test_loss)
    n_params = sum(p.numel() for p in result.params.values())
    for r in result.rounds:
        assert r.clients == 3
        assert r.bytes_up == r.bytes_down == 3 * 4 * n_params
        cohort = sample_cohort(config.seed, r.round, dataset.num_clients, 3)
        assert r.samples == int(dataset.train_sizes[cohort].sum())
    assert result.bytes_sent == 4 * 2 * 3 * 4 * n_params
    assert len(result.client_accuracies) == dataset.num_clients
    assert all(0.0 <= a <= 1.0 for a in result.client_accuracies)


def test_cohorts_are_a_pure_function_of_seed_and_round() -> None:
    a = sample_cohort(7, 3, 1000, 100)
    assert np.array_equal(a, sample_cohort(7, 3, 1000, 100))
    assert not np.array_equal(a, sample_cohort(7, 4, 1000, 100))
    assert len(set(a.tolist())) == 100
    assert np.array_equal(validation_clients(0, 50, 5), validation_clients(0, 50, 5))
    assert len(validation_clients(0, 50, None)) == 50


def test_callback_can_stop_the_run() -> None:
    seen = []

    def stop_after_two(round_, metrics):
        seen.append((round_, metrics["val_accuracy"]))
        return round_ == 2

    result = run_simulation(small(), callbacks=[stop_after_two])
    assert result.status == "stopped" and len(result.rounds) == 2
    assert [r for r, _ in seen] == [1, 2]
    assert seen[1][1] == result.rounds[1].val_accuracy


def test_ctrl_c_keeps_the_rounds_done() -> None:
    def interrupt(round_, metrics):
        if round_ == 3:
            raise KeyboardInterrupt

    result = run_simulation(small(), callbacks=[interrupt])
    assert result.status == "interrupted" and len(result.rounds) == 3
    assert math.isfinite(result.test_loss)


def test_diverging_run_ends_with_status_diverged() -> None:
    result = run_simulation(small(**{"server.optimizer": "adam", "server.lr": 3.0e38}))
    assert result.status == "diverged"
    assert result.reason.startswith("diverged: non-finite")
    assert len(result.rounds) < 4


def test_a_diverged_run_counts_the_steps_of_the_round_it_diverged_in() -> None:
    """The round that diverges records nothing, but its clients trained: a budget counts
    those steps too (a search whose trials all diverge in round 1 did spend compute)."""
    healthy = run_simulation(small())
    result = run_simulation(small(**{"client.lr": 1.0e6, "server.lr": 1.0e30}))
    assert result.status == "diverged" and "parameters in round 1" in result.reason
    assert result.rounds == ()
    assert result.unrecorded_steps == healthy.rounds[0].steps > 0
    assert result.steps == result.unrecorded_steps
    assert result.to_dict()["steps"] == result.steps


def test_fixed_validation_clients() -> None:
    result = run_simulation(small(**{"federation.val_clients": 4}))
    assert len(result.client_accuracies) == 4


def test_data_fraction_uses_fewer_samples() -> None:
    full = run_simulation(small())
    half = run_simulation(small(**{"data.fraction": 0.5}))
    assert sum(r.samples for r in half.rounds) < sum(r.samples for r in full.rounds)


def test_a_dataset_given_built_with_its_fraction_is_not_cut_again() -> None:
    # `fedhpo run` (and the benchmarks) build the dataset first: build_dataset applies
    # data.fraction, and the engine applied it a second time (0.5 became 0.25)
    config = small(**{"data.fraction": 0.5})
    alone = run_simulation(config)
    for dataset in (build_dataset(config.data), build_dataset(small().data)):
        given = run_simulation(config, dataset)
        assert [r.samples for r in given.rounds] == [r.samples for r in alone.rounds]
        assert given.test_loss == alone.test_loss
    with pytest.raises(ValueError, match="fraction 0.25.*data.fraction is 0.5"):
        run_simulation(config, build_dataset(small(**{"data.fraction": 0.25}).data))


def test_a_run_diverged_at_validation_keeps_the_last_good_parameters() -> None:
    # the round's update blew the weights up to 1e24 and they were kept, scored and saved
    # (model.pt) although finish_run promises the last good parameters
    config = small(**{"client.lr": 1.0e6})
    result = run_simulation(config)
    assert result.status == "diverged" and "validation loss in round 3" in result.reason
    good = run_simulation(config.with_values({"federation.rounds": 2}))
    assert good.status == "completed"
    assert all(torch.equal(result.params[k], good.params[k]) for k in good.params)
    assert result.test_accuracy == good.test_accuracy
    assert len(result.rounds) == 3 and math.isnan(result.rounds[-1].val_loss)
