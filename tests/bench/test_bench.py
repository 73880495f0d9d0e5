"""Benchmarks produce consistent figures on tiny inputs (no timing assertions)."""

from __future__ import annotations

import json

import pytest

from fedhpo.bench import (
    arm_config,
    async_configs,
    run_async_bench,
    run_fedprox_check,
    run_tune_bench,
    run_workload_w,
    summarize,
)
from fedhpo.cli.bench import plain_table
from fedhpo.cli.main import main
from fedhpo.config import config_from_dict
from tests.helpers import BASE, LR_MU


def test_workload_w_fast_and_reference_agree() -> None:
    report = run_workload_w(rounds=2, repeats=1, clients=200)
    fast, ref = report.trainers
    assert (fast.trainer, ref.trainer) == ("fast", "reference")
    assert fast.path == "linear"
    assert fast.test_accuracy == pytest.approx(ref.test_accuracy, abs=1e-3)
    assert report.cohort == 100 and report.clients == 200
    assert report.raw_bytes == 4 * 60 * (report.rows + 10_000)
    assert report.speedup is not None and report.speedup > 0


def test_bench_cli_json_is_stable(capsys) -> None:
    code = main(["bench", "--rounds", "2", "--clients", "150", "--skip-reference", "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {"clients", "rounds", "trainers", "raw_bytes", "speedup"} <= payload.keys()
    assert payload["trainers"][0]["trainer"] == "fast" and payload["speedup"] is None


def test_bench_run_times_any_config_on_both_trainers(tmp_path, capsys) -> None:
    path = tmp_path / "base.yaml"
    path.write_text(BASE)
    argv = ["bench", "--workload", "run", "--config", str(path), "--rounds", "2", "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["name"] == str(path) and payload["rounds"] == 2
    assert (payload["clients"], payload["cohort"], payload["repeats"]) == (12, 4, 1)
    fast, ref = payload["trainers"]
    assert (fast["trainer"], fast["path"], ref["trainer"]) == ("fast", "linear", "reference")
    assert fast["test_accuracy"] == pytest.approx(ref["test_accuracy"], abs=1e-3)
    assert payload["speedup"] > 0
    # the table names what it timed; a config that does not load exits 2 before any run
    assert main(["bench", "--workload", "run", "--config", str(path), "--rounds", "1"]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: 12 clients")
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.replace("logreg", "nope"))
    assert main(["bench", "--workload", "run", "--config", str(bad), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "nope" in captured.err


def test_bench_defaults_are_the_checkouts_files_from_any_folder(
    tmp_path, capsys, monkeypatch
) -> None:
    # "configs/fedprox_synthetic_1_1.yaml: file not found" from any folder but the checkout
    monkeypatch.chdir(tmp_path)
    argv = ["bench", "--workload", "run", "--rounds", "1", "--skip-reference", "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["name"].endswith("configs/fedprox_synthetic_1_1.yaml")
    assert payload["rounds"] == 1
    # a file given is the user's, read from the working folder
    argv = ["bench", "--workload", "run", "--config", "configs/fedprox_synthetic_1_1.yaml"]
    assert main([*argv, "--rounds", "1"]) == 2
    assert "file not found" in capsys.readouterr().err


def test_async_workload_is_w_on_a_heterogeneous_federation() -> None:
    sync, buff = async_configs(clients=1000)
    assert (sync.systems.speed_sigma, sync.systems.dropout) == (1.0, 0.1)
    assert sync.federation.mode == "sync" and sync.federation.rounds == 30
    assert buff.federation.mode == "async" and buff.fedbuff.buffer_size == 10
    assert buff.fedbuff.concurrency == sync.federation.clients_per_round == 100
    assert (buff.client, buff.model, buff.data) == (sync.client, sync.model, sync.data)


def test_async_bench_figures_are_consistent() -> None:
    report = run_async_bench(clients=120, rounds=3)
    sync, ref_sync = report.get("sync"), report.get("sync", "reference")
    buff, ref_buff = report.get("fedbuff"), report.get("fedbuff", "reference")
    assert sync and ref_sync and buff and ref_buff
    assert report.target == sync.test_accuracy
    assert sync.updates == 3 and sync.dropped > 0 and sync.sim_seconds > 0
    assert ref_sync.sim_seconds == sync.sim_seconds  # the same schedule, trainer aside
    assert ref_buff.updates == buff.updates
    assert buff.sim_seconds <= sync.sim_seconds or buff.reached
    if buff.reached:
        assert report.time_ratio == buff.sim_seconds / sync.sim_seconds
    assert report.speedup("fedbuff") is not None


def test_async_bench_cli_json(capsys) -> None:
    args = ["bench", "--workload", "async", "--rounds", "2", "--clients", "120"]
    code = main([*args, "--skip-reference", "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["speedup_fedbuff"] is None
    assert [r["schedule"] for r in payload["rows"]] == ["sync", "fedbuff"]
    assert {"target", "time_ratio", "clients"} <= payload.keys()


def test_fedprox_arms_cover_both_variants_and_mus() -> None:
    base = config_from_dict(
        {
            "data": {"name": "synthetic", "options": {"num_clients": 8}},
            "model": {"name": "logreg"},
            "client": {"local_epochs": 1, "batch_size": 10, "lr": 0.01},
            "federation": {"rounds": 2, "clients_per_round": 3},
        }
    )
    assert arm_config(base, "iid", 1, 1.0, 2).data.options["iid"] is True
    assert arm_config(base, "iid", 1, 1.0, 2).client.mu == 1.0
    arms = run_fedprox_check(base, data_seeds=(0,), rounds=2, jobs=1)
    assert len(arms) == 4
    summary = summarize(arms)
    assert sorted((s["variant"], s["mu"]) for s in summary) == sorted(
        (a.variant, a.mu) for a in arms
    )
    assert all(a.train_loss > 0 and 0 <= a.test_accuracy <= 1 for a in arms)


def test_tune_bench_counts_every_trial(make_space) -> None:
    space = make_space(
        LR_MU, tuner="{sampler: random, pruner: none, trials: 3, seed: 0, promote: 0}"
    )
    (fig,) = run_tune_bench(space, trials=3, jobs=(1,))
    assert fig.trials == 3 == fig.complete + fig.pruned + fig.failed
    assert fig.trials_per_minute > 0 and fig.best is not None


def test_plain_table_aligns_numbers_right() -> None:
    text = plain_table(["name", "value"], [["a", 1.5], ["bb", 12345.0]])
    lines = text.splitlines()
    assert lines[0].startswith("name") and lines[1].endswith("1.500")
    assert len({len(line) for line in lines[1:]}) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--problems", "lr_mu"], "`--problems`: applies to --workload quality only"),
        (["--tuner-seeds", "64"], "`--tuner-seeds`: applies to --workload quality only"),
        (["--workload", "async", "--repeat", "3"], "`--repeat`: applies to --workload w, run"),
        (["--workload", "quality", "--clients", "10"], "`--clients`: applies to --workload w,"),
        (["--workload", "run", "--seeds", "3"], "`--seeds`: applies to --workload fedprox only"),
        (["--trials", "5"], "`--trials`: applies to --tune only"),
        (["--tune", "--workload", "quality"], "`--workload`: --tune times a search on its own"),
        (["--workload", "fedprox", "--seeds", "0", "0"], "`--seeds`: seed 0 is given twice"),
    ],
)
def test_an_option_of_another_workload_is_refused_not_ignored(argv, message, capsys) -> None:
    # `fedhpo bench --problems lr_mu` timed workload W (minutes) and never said why
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_bench_help_reads_as_written(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "10% dropout" in text and "%%" not in text
