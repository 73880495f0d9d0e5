"""The CLI end to end: exit codes, one-line errors, outputs of run/tune/leaderboard/best."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedhpo.cli.main import main
from fedhpo.store import open_storage
from tests.helpers import BASE, LR_MU

REPO = Path(__file__).resolve().parents[2]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def small_config(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(BASE.replace("rounds: 12", "rounds: 3"))
    return path


def test_run_writes_result_config_and_weights(capsys, tmp_path, small_config) -> None:
    out = tmp_path / "out"
    code, stdout, _ = run_cli(
        capsys, "run", str(small_config), "--out", str(out), "--set", "seed=3"
    )
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "completed"
    assert result["config"]["seed"] == 3 and result["seeds"]["seed"] == 3
    assert [r["round"] for r in result["rounds"]] == [1, 2, 3]
    assert result["final"]["test_accuracy"] is not None
    assert result["fedhpo_version"]
    assert (out / "model.pt").exists() and (out / "config.yaml").exists()
    assert "test accuracy" in stdout


def test_run_says_when_the_cohort_asked_for_is_past_the_federation(capsys, small_config) -> None:
    # the cohort is clamped to the clients there are (12 here): said, not silent
    code, stdout, _ = run_cli(
        capsys, "run", str(small_config), "--set", "federation.clients_per_round=100000"
    )
    assert code == 0
    assert "federation.clients_per_round 100000 is more than the 12 clients" in stdout
    assert "note" not in run_cli(capsys, "run", str(small_config))[1]


def test_run_is_deterministic(capsys, tmp_path, small_config) -> None:
    for name in ("a", "b"):
        assert run_cli(capsys, "run", str(small_config), "--out", str(tmp_path / name))[0] == 0
    a = json.loads((tmp_path / "a" / "result.json").read_text())
    b = json.loads((tmp_path / "b" / "result.json").read_text())
    assert a["rounds"] == [
        {**r, "wall_seconds": a["rounds"][i]["wall_seconds"]} for i, r in enumerate(b["rounds"])
    ]
    assert a["final"]["test_loss"] == b["final"]["test_loss"]


@pytest.mark.parametrize(
    ("config_text", "overrides", "fragment"),
    [
        ("client: {lr: 0.1, learnrate: 1}\n", [], "unknown key; valid keys here: lr"),
        ("client: {local_epochs: two}\n", [], "expected an integer, got 'two'"),
        ("client: {lr: -0.5}\n", [], "`client.lr`: must be > 0"),
        ("federation: {client_fraction: 1.5}\n", [], "must be in (0, 1], got 1.5"),
        ("data: {name: idx, options: {path: /no/such/dir}}\n", [], "/no/such/dir"),
        ("client: [1, 2\n", [], "malformed YAML"),
        ("", ["client.lr=0"], "--set: `client.lr`: must be > 0"),
        ("data: {name: nosuch}\n", [], "`data.name`"),
        ("server: {optimizer: adamw}\n", [], "unknown server optimizer 'adamw'; registered: a"),
    ],
)
def test_bad_configs_exit_2_with_one_line(capsys, tmp_path, config_text, overrides, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(config_text)
    argv = ["run", str(path)] + [a for o in overrides for a in ("--set", o)]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert fragment in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_config_file_exits_2(capsys) -> None:
    code, _, err = run_cli(capsys, "run", "no/such.yaml")
    assert code == 2 and "no/such.yaml: file not found" in err


def test_unknown_plugin_exits_2(capsys) -> None:
    code, _, err = run_cli(capsys, "run", "--plugin", "no_such_fedhpo_plugin")
    assert code == 2 and "no_such_fedhpo_plugin" in err


def test_plugin_registers_a_dataset(capsys, tmp_path, monkeypatch) -> None:
    (tmp_path / "my_fedhpo_plugin.py").write_text(
        "import numpy as np\n"
        "from fedhpo.sim.data import ArrayData\n"
        "from fedhpo.sim.datasets import register_dataset\n"
        "@register_dataset('tiny_plugin_data')\n"
        "def tiny(*, seed: int, n: int = 200):\n"
        "    rng = np.random.default_rng(seed)\n"
        "    x = rng.normal(size=(n, 4)).astype(np.float32)\n"
        "    y = (x[:, 0] > 0).astype(np.int64)\n"
        "    return ArrayData(x=x, y=y, client=None, test_x=x[:50], test_y=y[:50], num_classes=2)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = tmp_path / "c.yaml"
    config.write_text(
        "data: {name: tiny_plugin_data, partition: {method: iid, num_clients: 4, min_size: 5}}\n"
        "model: {name: logreg}\nfederation: {rounds: 2, clients_per_round: 2}\n"
    )
    code, stdout, err = run_cli(capsys, "run", str(config), "--plugin", "my_fedhpo_plugin")
    assert code == 0, err
    assert "completed" in stdout


def test_space_check_lists_params_and_rejects_mistakes(capsys, tmp_path) -> None:
    code, stdout, _ = run_cli(capsys, "space", "check", str(REPO / "searchspaces" / "lr_mu.yaml"))
    assert code == 0 and "client.lr" in stdout and "client.mu" in stdout
    unit = "cost of a full run, in runs of the base config (the unit of a budget): "
    assert unit + "1 for every config drawn" in stdout
    # local epochs 1-4 and batch sizes 16-64 around a base config of 1 epoch at batch 16
    code, stdout, _ = run_cli(
        capsys, "space", "check", str(REPO / "searchspaces" / "w_client.yaml")
    )
    assert code == 0 and unit + "0.36-4; 1.61 on average over 256 configs drawn" in stdout
    # a valid file whose data is not on this machine is still valid; its cost is not known
    fmnist = (REPO / "configs" / "fmnist_cnn.yaml").read_text()
    (tmp_path / "away.yaml").write_text(fmnist.replace("../shared/data/fashion_mnist", "nowhere"))
    (tmp_path / "space.yaml").write_text("base: away.yaml\nparams:\n" + LR_MU)
    code, stdout, _ = run_cli(capsys, "space", "check", str(tmp_path / "space.yaml"))
    assert code == 0 and "valid" in stdout
    assert "cost of a full run, not computed: the base config's data cannot be built" in stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("params:\n  client.lr: {type: float, low: 0.5, high: 0.1}\n")
    code, _, err = run_cli(capsys, "space", "check", str(bad))
    assert code == 2 and str(bad) in err and "client.lr" in err


def test_tune_leaderboard_best_run(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(BASE)
    space = tmp_path / "lrmu.yaml"
    space.write_text(
        "base: base.yaml\nfidelity: {rounds: 4}\n"
        "tuner: {sampler: random, pruner: none, trials: 3}\nparams:\n" + LR_MU
    )
    code, stdout, err = run_cli(capsys, "tune", "--space", str(space))
    assert code == 0, err
    assert (tmp_path / "fedhpo.db").exists()  # the default storage, in the working directory
    assert "fedhpo best lrmu" in stdout
    code, stdout, _ = run_cli(capsys, "leaderboard", "lrmu", "--format", "json")
    rows = json.loads(stdout)
    assert code == 0 and len(rows) == 3 and rows[0]["rank"] == 1
    assert rows[0]["val_accuracy"] >= rows[-1]["val_accuracy"]
    code, stdout, _ = run_cli(capsys, "studies", "--format", "csv")
    assert code == 0 and stdout.splitlines()[1].startswith("lrmu,")
    code, _, _ = run_cli(capsys, "best", "lrmu", "--out", "best.yaml")
    assert code == 0
    code, stdout, err = run_cli(capsys, "run", "best.yaml", "--out", "runs/best")
    assert code == 0, err
    assert json.loads((tmp_path / "runs/best/result.json").read_text())["config"]["client"][
        "lr"
    ] == pytest.approx(rows[0]["client.lr"])


@pytest.mark.parametrize(
    ("fidelity", "says"),
    [
        ("{}", "at full fidelity.\n# Reproduce with: fedhpo run best.yaml"),
        (
            "{rounds: 4, clients_per_round: 3, data_fraction: 0.5}",
            "measured at the search's fidelity (4 of 12 rounds, 3 clients per round of 4, "
            "data fraction 0.5); this file is the full run",
        ),
    ],
)
def test_the_exported_header_says_at_which_fidelity_the_value_was_measured(
    capsys, tmp_path, monkeypatch, make_space, fidelity, says
) -> None:
    # it said "at full fidelity ... Reproduce with" for a 4-round trial on half the data
    monkeypatch.chdir(tmp_path)
    space = make_space(LR_MU, fidelity=fidelity)
    assert run_cli(capsys, "tune", "--space", str(space), "--trials", "2")[0] == 0
    assert run_cli(capsys, "best", "space", "--out", "best.yaml")[0] == 0
    header = (tmp_path / "best.yaml").read_text()
    assert says in header
    assert ("at full fidelity" in header) == (fidelity == "{}")


def test_tune_under_a_budget_prints_what_it_spent_against_it(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(BASE)
    space = tmp_path / "lrmu.yaml"
    space.write_text("base: base.yaml\ntuner: {sampler: random, pruner: none}\nparams:\n" + LR_MU)
    code, stdout, err = run_cli(capsys, "tune", "--space", str(space), "--budget", "1.5")
    assert code == 0, err
    spent = float(stdout.split("compute: ")[1].split()[0])
    assert 1.5 <= spent < 2.0  # the second full run stops when the budget is spent
    assert "full-run equivalents (budget 1.5)" in stdout


def test_tune_with_bad_space_exits_2_and_creates_no_database(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    space = tmp_path / "bad.yaml"
    space.write_text("params:\n  client.nope: {type: float, low: 0.1, high: 1.0}\n")
    code, _, err = run_cli(capsys, "tune", "--space", str(space))
    assert code == 2 and "client.nope" in err
    assert not (tmp_path / "fedhpo.db").exists()


def test_unknown_study_exits_2(capsys, tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 'x.db'}"
    open_storage(storage)  # an existing database without that study
    code, _, err = run_cli(capsys, "leaderboard", "nope", "--storage", storage)
    assert code == 2 and "no study 'nope'" in err and "studies: none yet" in err


def test_plugin_server_optimizer_is_usable_from_yaml(capsys, tmp_path, monkeypatch) -> None:
    from fedhpo.sim import server

    monkeypatch.setattr(server, "_OPTIMIZERS", dict(server._OPTIMIZERS))
    (tmp_path / "my_fedhpo_server.py").write_text(
        "from fedhpo.sim.server import register_server_optimizer\n"
        "@register_server_optimizer('damped')\n"
        "class Damped:\n"
        "    def __init__(self, cfg):\n"
        "        self.scale = cfg.options.get('scale', 1.0)\n"
        "    def init(self, params):\n"
        "        return None\n"
        "    def step(self, params, delta, state):\n"
        "        return {k: p + self.scale * delta[k] for k, p in params.items()}, state\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = tmp_path / "c.yaml"
    config.write_text(
        BASE.replace("rounds: 12", "rounds: 2")
        + "server: {optimizer: damped, options: {scale: 0.5}}\n"
    )
    code, _, err = run_cli(capsys, "run", str(config))
    assert code == 2 and "'damped'" in err and "--plugin" in err  # not registered yet
    code, stdout, err = run_cli(capsys, "run", str(config), "--plugin", "my_fedhpo_server")
    assert code == 0, err
    assert "completed" in stdout


def test_next_steps_of_a_hostile_study_name_stay_in_their_folders(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(BASE.replace("rounds: 12", "rounds: 2"))
    space = tmp_path / "s.yaml"
    space.write_text("base: base.yaml\ntuner: {sampler: random, trials: 1}\nparams:\n" + LR_MU)
    name = "../../etc/x; rm -rf ~"
    code, stdout, err = run_cli(capsys, "tune", "--space", str(space), "--study", name)
    assert code == 0, err
    assert "fedhpo best '../../etc/x; rm -rf ~' --out configs/best_etc-x-rm--rf.yaml" in stdout
    assert "fedhpo run configs/best_etc-x-rm--rf.yaml --out runs/best_etc-x-rm--rf" in stdout
    code, stdout, err = run_cli(capsys, "report", name)
    assert code == 0, err
    assert (tmp_path / "reports" / "etc-x-rm--rf" / "index.html").is_file()


def test_leaderboard_and_best_say_when_the_leader_did_not_finish(capsys, tmp_path) -> None:
    # a trial the budget stopped while ahead of the best complete trial leads: the commands
    # say so, `fedhpo best` exports it, and the summary counts it with the pruned trials
    from fedhpo.tune import tune
    from tests.helpers import climbing_run

    (tmp_path / "base.yaml").write_text(BASE)
    space = tmp_path / "lrmu.yaml"
    space.write_text("base: base.yaml\ntuner: {sampler: random, pruner: none}\nparams:\n" + LR_MU)
    storage = f"sqlite:///{tmp_path / 'lead.db'}"
    study = tune(
        str(space), storage=storage, study="lead", budget=2.5,
        run=climbing_run([0.5, 0.6, 0.9]), log=lambda _: None,
    )  # fmt: skip
    code, stdout, err = run_cli(capsys, "leaderboard", "lead", "--storage", storage)
    assert code == 0, err
    assert "trial 2 leads though it did not finish: the budget stopped it at round 6" in stdout
    out = tmp_path / "best.yaml"
    code, _, err = run_cli(capsys, "best", "lead", "--storage", storage, "--out", str(out))
    assert code == 0, err
    text = out.read_text()
    assert "trial 2, stopped by the budget at round 6 of 12 while ahead" in text
    assert f"lr: {study.trials[2].params['client.lr']}" in text


def test_tune_says_what_a_full_run_of_the_space_costs(
    capsys, tmp_path, monkeypatch, make_space
) -> None:
    monkeypatch.chdir(tmp_path)
    tuner, epochs = (
        "{sampler: random, pruner: none}",
        "  client.local_epochs: {type: int, low: 1, high: 2}\n",
    )
    space = make_space(epochs + LR_MU, tuner=tuner, fidelity="{rounds: 2}", name="epochs")
    code, stdout, _ = run_cli(capsys, "tune", "--space", str(space), "--budget", "0.3")
    assert code == 0
    assert (
        "a full run of this space's configs costs 1-2 runs of the base config, the budget's "
        "unit; " in stdout
    )
    # a space whose configs all cost one base-config run says nothing of it
    space = make_space(LR_MU, tuner=tuner, fidelity="{rounds: 2}", name="lr_mu")
    code, stdout, _ = run_cli(capsys, "tune", "--space", str(space), "--budget", "0.3")
    assert code == 0 and "the budget's unit" not in stdout


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["tune", "--budget", "nan"], "argument --budget: must be a finite number > 0, got 'nan'"),
        (["tune", "--budget", "inf"], "argument --budget: must be a finite number > 0, got 'inf'"),
        (["tune", "--budget", "0"], "argument --budget: must be a finite number > 0, got '0'"),
        (["tune", "--trials", "-1"], "argument --trials: must be an integer >= 0, got '-1'"),
        (["tune", "--jobs", "-2"], "argument --jobs: must be an integer >= 1, got '-2'"),
        (["tune", "--timeout", "-5"], "argument --timeout: must be a finite number > 0"),
        (["tune", "--promote", "-1"], "argument --promote: must be an integer >= 0, got '-1'"),
        (["tune", "--seeds", "0"], "argument --seeds: must be an integer >= 1, got '0'"),
        (["tune", "--trials", "2.5"], "argument --trials: must be an integer >= 0, got '2.5'"),
        (["tune", "--heartbeat", "0"], "argument --heartbeat: must be an integer >= 1"),
        (["tune", "--db-retry", "nan"], "argument --db-retry: must be a finite number >= 0"),
        (["worker", "--study", "s", "--trials", "0"], "argument --trials: must be an integer >= 1"),
        (["leaderboard", "s", "--top", "0"], "argument --top: must be an integer >= 1, got '0'"),
        (["bench", "--workload", "quality", "--tuner-seeds", "0"], "argument --tuner-seeds"),
    ],
)
def test_bad_numbers_on_the_command_line_exit_2_before_anything_is_written(
    capsys, tmp_path: Path, argv: list[str], fragment: str
) -> None:
    """Numbers a command cannot use (a budget of nan, -1 trials, no jobs) are an error naming
    the flag and the value, exit 2, before a study is made: not a traceback, not a study that
    silently runs nothing."""
    db = tmp_path / "s.db"
    space = ["--space", "searchspaces/lr_mu.yaml"] if argv[0] == "tune" else []
    with pytest.raises(SystemExit) as exit_:
        main([*argv, *space, "--storage", f"sqlite:///{db}"] if argv[0] != "bench" else argv)
    _, err = capsys.readouterr()
    assert exit_.value.code == 2, err
    assert fragment in err and "Traceback" not in err, err
    assert not db.exists()


@pytest.mark.parametrize(
    "command",
    [["studies"], ["leaderboard", "s"], ["best", "s"], ["report", "s"], ["report", "--compare", "s"],
     ["worker", "--study", "s", "--trials", "1"]],
)  # fmt: skip
def test_commands_that_read_a_study_never_create_a_database(capsys, tmp_path, command):
    # a mistyped --storage path used to be created as an empty database, then reported as
    # holding no studies: the user never learnt that the path was wrong
    db = tmp_path / "typo.db"
    code, _, err = run_cli(capsys, *command, "--storage", f"sqlite:///{db}")
    assert code == 2 and "Traceback" not in err
    assert f"no study database at {str(db)!r}" in err and "`--storage`" in err
    assert not db.exists() and list(tmp_path.iterdir()) == []


def test_unknown_names_stop_a_run_before_its_progress_bar(capsys, tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("data: {name: nosuch}\n")
    code, out, err = run_cli(capsys, "run", str(path))
    assert code == 2 and "unknown dataset 'nosuch'" in err
    assert out == ""  # no "rounds 0/200" bar for a run that never started


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("", "is empty"), ("two\nlines", "line break or control character"),
     ("a" * 513, "513 characters; at most 512")],
)  # fmt: skip
def test_unusable_study_names_exit_2_before_any_database(capsys, tmp_path, monkeypatch, name,
                                                         fragment) -> None:  # fmt: skip
    # a 600-character name was a StorageInternalError traceback on PostgreSQL; '' silently
    # became the space file's name; a name with a line break broke every command printed
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "sp.yaml").write_text("base: base.yaml\nparams:\n" + LR_MU)
    for command in (["tune", "--space", "sp.yaml"], ["worker", "--space", "sp.yaml"]):
        code, _, err = run_cli(capsys, *command, "--study", name, "--trials", "1")
        assert code == 2 and "`--study`" in err and fragment in err, err
        assert "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "fedhpo.db").exists()
    code, out, err = run_cli(capsys, "tune", "--space", "sp.yaml", "--study", "a" * 512,
                             "--trials", "1", "--create-only")  # fmt: skip
    assert code == 0, err


def test_a_search_whose_every_trial_diverged_says_so_and_suggests_no_export(
    capsys, tmp_path, monkeypatch
) -> None:
    # it printed "next: fedhpo best ...", and `fedhpo best` then said "run `fedhpo tune`
    # first", to a user who just had
    monkeypatch.chdir(tmp_path)
    base = BASE.replace("rounds: 12", "rounds: 3") + "server: {optimizer: adam}\n"
    (tmp_path / "base.yaml").write_text(base)
    (tmp_path / "div.yaml").write_text(
        "base: base.yaml\ntuner: {sampler: random, pruner: none, trials: 2}\nparams:\n"
        "  server.lr: {type: float, low: 1.0e+38, high: 3.0e+38}\n"
    )
    code, out, err = run_cli(capsys, "tune", "--space", "div.yaml")
    assert code == 0, err
    assert "no trial completed" in out and "diverged" in out and "fedhpo best" not in out
    assert "fedhpo leaderboard div --all" in out
    code, _, err = run_cli(capsys, "best", "div")
    assert code == 2 and "no complete trial: 2 pruned" in err and "diverged" in err
    assert "run `fedhpo tune` first" not in err and "fedhpo leaderboard div --all" in err


def test_a_data_error_stops_a_run_before_its_progress_bar(capsys, tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"data: {{name: csv, options: {{path: {tmp_path / 'none.csv'}}}}}\n")
    code, out, err = run_cli(capsys, "run", str(path))
    assert code == 2 and "file not found" in err
    assert out == ""  # no "rounds 0/30" bar for a run that never started


@pytest.mark.parametrize(
    ("setting", "fragment"),
    [("systems.trace={trace}", "systems.trace"), ("model.options={{hidden: [0]}}", "hidden")],
)
def test_a_trace_or_model_error_stops_a_run_before_its_progress_bar(
    capsys, tmp_path, small_config, setting, fragment
) -> None:
    # both were read once the run had started: "rounds 0/3" was printed above the error
    trace = tmp_path / "empty.csv"
    trace.write_text("")
    override = setting.format(trace=trace)
    code, out, err = run_cli(capsys, "run", str(small_config), "--set", "model.name=mlp",
                             "--set", override)  # fmt: skip
    assert code == 2 and fragment in err and err.count("\n") == 1
    assert out == ""


@pytest.mark.parametrize("command", ["run", "best lr_mu", "report lr_mu", "bench"])
def test_an_empty_out_path_is_refused_not_ignored(capsys, tmp_path, monkeypatch, command):
    # `fedhpo run --out ""` ran and saved nothing, as if --out had not been given
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main([*command.split(), "--out", ""])
    assert exc.value.code == 2
    assert "--out: an empty path" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("problem", ["not a database", "another space"])
def test_a_study_tune_cannot_use_stops_it_before_its_plan_is_printed(
    capsys, tmp_path, monkeypatch, make_space, problem
) -> None:
    # the plan line and an empty "search 0/2 trials" bar came before the error
    monkeypatch.chdir(tmp_path)
    space = make_space(LR_MU)
    db = tmp_path / "s.db"
    if problem == "not a database":
        db.write_text("hello\n")
    else:
        other = make_space("  client.lr: {type: float, low: 0.01, high: 0.1}\n", name="other")
        assert run_cli(capsys, "tune", "--space", str(other), "--study", "space",
                       "--storage", f"sqlite:///{db}", "--trials", "1")[0] == 0  # fmt: skip
    code, out, err = run_cli(
        capsys, "tune", "--space", str(space), "--storage", f"sqlite:///{db}", "--trials", "2"
    )
    assert code == 2 and out == "", out
    assert (
        "is not a SQLite database" if problem == "not a database" else "different search"
    ) in err


@pytest.mark.parametrize(
    ("config_text", "overrides", "where"),
    [
        # said "fedhpo: error: `data.options.dim`: ..." with neither file nor line
        ("data:\n  name: synthetic\n  options:\n    dim: 0\nfederation: {rounds: 1}\n", [],
         "bd.yaml:4: `data.options.dim`: must be >= 1, got 0"),
        ("data: {name: synthetic, options: {beta: .nan}}\nfederation: {rounds: 1}\n", [],
         "bd.yaml:1: `data.options.beta`: must be a finite number >= 0, got nan"),
        ("data: {name: synthetic}\nmodel:\n  name: mlp\n  options:\n    hidden: x\n", [],
         "bd.yaml:5: `model.options.hidden`: must be a list of positive integers"),
        ("model:\n  name: nosuch\n", [], "bd.yaml:2: `model.name`: unknown model 'nosuch'"),
        ("data: {name: synthetic}\n", ["data.options.dim=0"],
         "--set: `data.options.dim`: must be >= 1, got 0"),
        ("data: {name: synthetic}\n", ["model={name: mlp, options: {hidden: x}}"],
         "--set: `model.options.hidden`: must be a list of positive integers"),
        # a huge count was "OverflowError: Python int too large to convert to C long"
        ("data: {name: synthetic}\nfederation: {rounds: 2}\n"
         "client: {local_epochs: 100000000000000000000000000000}\n", [],
         "bd.yaml:3: `client.local_epochs`: must be at most 2147483647 (2**31 - 1), got 1"),
        # and "ValueError: Maximum allowed dimension exceeded"
        ("data: {name: synthetic, options: {num_clients: 100000000000000000000000000000}}\n", [],
         "bd.yaml:1: `data.options.num_clients`: must be at most 1000000, got 1"),
    ],
)  # fmt: skip
def test_option_errors_of_a_run_name_the_file_and_line_or_set(
    capsys, tmp_path, config_text, overrides, where
) -> None:
    path = tmp_path / "bd.yaml"
    path.write_text(config_text)
    argv = ["run", str(path)] + [a for o in overrides for a in ("--set", o)]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == "", err
    prefix = "fedhpo: error: " + ("" if where.startswith("--set") else str(tmp_path) + "/")
    assert err.startswith(prefix + where), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_run_set_with_an_empty_mapping_keeps_the_files_section(capsys, tmp_path) -> None:
    # `--set client={}` trained at the defaults (lr 0.05, batch 16), not the file's values
    path = tmp_path / "r.yaml"
    path.write_text(BASE.replace("{lr: 0.05, batch_size: 16,", "{lr: 0.2, batch_size: 8,"))
    code, _, err = run_cli(
        capsys, "run", str(path), "--out", str(tmp_path / "x"), "--set", "client={}",
        "--set", "federation.rounds=1",
    )  # fmt: skip
    assert code == 0, err
    config = json.loads((tmp_path / "x" / "result.json").read_text())["config"]
    assert config["client"]["lr"] == 0.2 and config["client"]["batch_size"] == 8


@pytest.mark.parametrize("command", ["tune", "worker"])
def test_tune_set_errors_are_reported_as_set(capsys, tmp_path, monkeypatch, command) -> None:
    # `tune --set client.batch_size=0` said "`client.batch_size`: ..." where run says "--set:"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "s1.yaml").write_text("base: base.yaml\nparams:\n" + LR_MU)
    argv = [command, "--space", "s1.yaml", "--set", "client.batch_size=0", "--trials", "1"]
    code, _, err = run_cli(capsys, *argv, *(["--study", "s1"] if command == "worker" else []))
    assert code == 2
    assert err == "fedhpo: error: --set: `client.batch_size`: must be >= 1, got 0\n"
    assert not (tmp_path / "fedhpo.db").exists()


@pytest.mark.parametrize("create_only", [False, True])
def test_tune_set_errors_found_by_the_checks_are_reported_as_set(
    capsys, tmp_path, monkeypatch, create_only
) -> None:
    # the data options are checked as the base data is built, after --set was applied
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "s1.yaml").write_text("base: base.yaml\nparams:\n" + LR_MU)
    argv = ["tune", "--space", "s1.yaml", "--set", "data.options.dim=0", "--trials", "1"]
    code, _, err = run_cli(capsys, *argv, *(["--create-only"] if create_only else []))
    assert code == 2
    assert err == "fedhpo: error: --set: `data.options.dim`: must be >= 1, got 0\n"
    assert not (tmp_path / "fedhpo.db").exists()
