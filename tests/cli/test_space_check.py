"""`fedhpo space check`, `tune` and `run` on options the trials' dataset, model or server
optimizer would refuse: one located error, exit code 2, no study written."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedhpo.cli.main import main

ROUNDS2 = """\
data:
  name: synthetic
  options: {alpha: 1.0, beta: 1.0, num_clients: 20}
model:
  name: logreg
federation:
  rounds: 3
  clients_per_round: 5
"""


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def space_file(folder: Path, param: str, base: str = ROUNDS2) -> Path:
    (folder / "rounds2.yaml").write_text(base)
    path = folder / "sp.yaml"
    path.write_text(f"base: rounds2.yaml\nparams:\n  {param}\n")
    return path


def refused(capsys, folder: Path, space: Path) -> list[str]:
    """The stderr of `space check` and of `tune`, each refusing ``space`` (exit code 2)
    before a study is written."""
    errs = []
    for argv in (["space", "check", str(space)], ["tune", "--space", str(space), "--trials", "4"]):
        code, out, err = cli(capsys, *argv)
        assert code == 2 and "valid" not in out, (argv, out, err)
        errs.append(err)
    assert not (folder / "fedhpo.db").exists()
    return errs


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --------------------------------------------------------------------------- model options


def test_a_model_option_the_base_model_does_not_take(capsys, here) -> None:
    space = space_file(here, 'model.options.hidden: {type: categorical, choices: [16, "x", null]}')
    for err in refused(capsys, here, space):
        assert err == (
            f"fedhpo: error: {space}:3: `params.model.options.hidden`: model 'logreg' takes no "
            "option 'hidden' (its options: none), which this space searches for it; remove "
            "params.model.options.hidden, or set model.name in the base config (or search it) "
            "to a model that takes it\n"
        )


def test_a_model_option_value_the_model_refuses(capsys, here) -> None:
    base = ROUNDS2.replace("name: logreg", "name: mlp")
    space = space_file(here, "model.options.hidden: {type: categorical, choices: [16, 32]}", base)
    for err in refused(capsys, here, space):
        assert err == (
            f"fedhpo: error: {space}:3: `params.model.options.hidden.choices`: choice 16: "
            "`model.options.hidden`: must be a list of positive integers, e.g. [64, 32], got 16\n"
        )


# ------------------------------------------------------------------ the base's data options


def test_base_dataset_options_the_dataset_refuses(capsys, here) -> None:
    (here / "bd.yaml").write_text(
        "data: {name: synthetic, options: {dim: 0}}\nfederation: {rounds: 1}\n"
    )
    space = here / "sbd.yaml"
    space.write_text("base: bd.yaml\nparams:\n  client.lr: {type: float, low: 0.001, high: 1}\n")
    for err in refused(capsys, here, space):
        assert (
            err == f"fedhpo: error: {here / 'bd.yaml'}:1: `data.options.dim`: must be >= 1, got 0\n"
        )


def test_data_not_on_this_machine_still_checks_valid(capsys, here) -> None:
    # a missing file is not a mistake of the space: whoever builds the data says so
    base = ROUNDS2.replace(
        "  name: synthetic\n  options: {alpha: 1.0, beta: 1.0, num_clients: 20}\n",
        f"  name: csv\n  options: {{path: {here / 'elsewhere.csv'}}}\n",
    )
    code, out, err = cli(
        capsys,
        "space",
        "check",
        str(space_file(here, "client.lr: {type: float, low: 0.01, high: 1}", base)),
    )
    assert code == 0 and "valid" in out and err == ""
    assert "cost of a full run, not computed: the base config's data cannot be built here" in out
    assert "file not found" in out


# ------------------------------------------------------------------- server optimizer options


def test_a_searched_server_option_of_a_builtin_optimizer(capsys, here) -> None:
    space = space_file(here, "server.options.foo: {type: float, low: 0.1, high: 1.0}")
    for err in refused(capsys, here, space):
        assert err.startswith(
            f"fedhpo: error: {space}:3: `params.server.options.foo`: server optimizer 'sgd' "
            "takes no option 'foo'"
        )


def test_a_searched_server_setting_the_optimizer_does_not_read(capsys, here) -> None:
    space = space_file(here, "server.beta1: {type: float, low: 0.1, high: 0.9}")
    for err in refused(capsys, here, space):
        assert err == (
            f"fedhpo: error: {space}:3: `params.server.beta1`: server optimizer 'sgd' does not "
            "read server.beta1 (it reads server.lr, server.momentum), so this param cannot "
            "change any trial; remove it, or set server.optimizer in the base config (or search "
            "it) to one that reads it: adagrad, adam, yogi\n"
        )


def test_run_refuses_server_options_of_a_builtin_optimizer(capsys, here) -> None:
    # it ran to completion, foo ignored
    (here / "rounds2.yaml").write_text(ROUNDS2)
    code, _, err = cli(
        capsys, "run", "rounds2.yaml", "--set", "server.optimizer=adam",
        "--set", "server.options.foo=0.5", "--out", "out",
    )  # fmt: skip
    assert code == 2 and not (here / "out" / "result.json").exists()
    assert (
        "`server.options.foo`: unknown option for server optimizer 'adam'; valid options: none"
        in err
    )
    assert err.count("\n") == 1
