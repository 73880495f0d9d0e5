"""--plugin on every command that builds configs; registry names are checked where they are
built, before a study is written; a module is imported only when named."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
import yaml

from fedhpo.cli.main import main
from fedhpo.sim import server
from tests.helpers import BASE

PLUGIN = """\
from fedhpo.sim.server import register_server_optimizer
(Path := __import__("pathlib").Path)("imported.marker").write_text("yes")
@register_server_optimizer("damped")
class Damped:
    def __init__(self, cfg):
        self.scale = cfg.options.get("scale", 0.5)
    def init(self, params):
        return None
    def step(self, params, delta, state):
        return {k: p + self.scale * delta[k] for k, p in params.items()}, state
"""
UNKNOWN = "unknown server optimizer 'damped'; registered: adagrad, adam, sgd, yogi"


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A plugin module in the working directory, registering server optimizer `damped`."""
    name = f"fedhpo_test_plugin_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(PLUGIN)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(server, "_OPTIMIZERS", dict(server._OPTIMIZERS))
    yield name
    sys.modules.pop(name, None)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_space(tmp_path: Path, base_optimizer: str, choices: str | None = None) -> Path:
    (tmp_path / "base.yaml").write_text(
        BASE.replace("rounds: 12", "rounds: 3") + f"server: {{optimizer: {base_optimizer}}}\n"
    )
    params = "  client.lr: {type: float, low: 0.01, high: 0.1}\n"
    if choices:
        params += f"  server.optimizer: {{type: categorical, choices: {choices}}}\n"
    space = tmp_path / "sp.yaml"
    space.write_text(f"base: base.yaml\ntuner: {{sampler: random, trials: 2}}\nparams:\n{params}")
    return space


@pytest.mark.parametrize(("base", "choices"), [("damped", None), ("sgd", "[sgd, damped]")])
def test_unknown_server_optimizer_stops_tune_before_any_study(
    capsys, tmp_path, plugin, base, choices
):
    space = write_space(tmp_path, base, choices)
    code, _, err = cli(capsys, "tune", "--space", str(space))
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert UNKNOWN in err and "--plugin" in err
    assert ("params.server.optimizer" in err) == (choices is not None)
    if choices is not None:  # the file and the choices' line, as for other space errors
        assert f"{space}:5: `params.server.optimizer.choices`" in err
    assert not (tmp_path / "fedhpo.db").exists()
    assert not (tmp_path / "imported.marker").exists()  # not named, so never imported
    code, _, err = cli(capsys, "space", "check", str(space))
    assert code == 2 and UNKNOWN in err


def test_plugin_optimizer_through_space_check_tune_best_and_run(capsys, tmp_path, plugin) -> None:
    space = write_space(tmp_path, "damped", "[sgd, damped]")
    code, out, err = cli(capsys, "space", "check", str(space), "--plugin", plugin)
    assert code == 0 and "valid" in out, err
    code, out, err = cli(capsys, "tune", "--space", str(space), "--plugin", plugin)
    assert code == 0, err
    assert f"fedhpo best sp --plugin {plugin} --out" in out  # the next steps need it too
    code, out, err = cli(
        capsys, "best", "sp", "--trial", "0", "--out", "b.yaml", "--plugin", plugin
    )
    assert code == 0, err
    assert f"fedhpo run b.yaml --plugin {plugin}" in out
    assert yaml.safe_load(Path("b.yaml").read_text())["server"]["optimizer"] == "damped"
    # the file's own header said `fedhpo run b.yaml`, which failed with "unknown optimizer"
    header = [line for line in Path("b.yaml").read_text().splitlines() if line.startswith("#")]
    command = next(line for line in header if "fedhpo run " in line).split("fedhpo run ")[1]
    assert command == f"b.yaml --plugin {plugin}"
    code, out, err = cli(capsys, "run", *shlex.split(command))
    assert code == 0 and "completed" in out, err


def test_best_without_the_plugin_exports_and_says_run_needs_it(capsys, tmp_path, plugin) -> None:
    space = write_space(tmp_path, "damped")
    assert cli(capsys, "tune", "--space", str(space), "--plugin", plugin)[0] == 0
    server._OPTIMIZERS.pop("damped")  # a fresh process that has not imported the plugin
    code, out, err = cli(capsys, "best", "sp", "--trial", "0", "--out", "b.yaml")
    assert code == 0, err
    assert UNKNOWN in err and "--plugin" in err  # a note, not an error: the file is written
    assert yaml.safe_load(Path("b.yaml").read_text())["server"]["optimizer"] == "damped"


def test_a_module_is_imported_only_when_named(capsys, tmp_path, plugin) -> None:
    (tmp_path / "c.yaml").write_text(BASE.replace("rounds: 12", "rounds: 1"))
    assert cli(capsys, "run", "c.yaml")[0] == 0
    assert not (tmp_path / "imported.marker").exists()
    assert cli(capsys, "run", "c.yaml", "--plugin", plugin)[0] == 0
    assert (tmp_path / "imported.marker").read_text() == "yes"


@pytest.mark.parametrize(
    ("source", "fragment", "line"),
    [("x = 1\nraise RuntimeError('boom')\n", "RuntimeError: boom", 2),
     ("import no_such_dependency_of_fedhpo_plugin\n",
      "ModuleNotFoundError: No module named 'no_such_dependency_of_fedhpo_plugin'", 1),
     ("def broken(:\n", "SyntaxError", 1)],
)  # fmt: skip
def test_a_plugin_that_fails_on_import_is_one_line_naming_where(
    capsys, tmp_path, monkeypatch, source, fragment, line
) -> None:
    # it was a traceback with exit code 1
    monkeypatch.chdir(tmp_path)
    name = f"broken_fedhpo_plugin_{line}_{len(source)}"
    (tmp_path / f"{name}.py").write_text(source)
    code, _, err = cli(capsys, "run", "--plugin", name)
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert f"`--plugin`: plugin module {name!r} failed on import" in err
    assert fragment in err and f"{name}.py:{line}" in err
    sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("param", "fragment"),
    [
        ("{type: categorical, choices: [1.0, true]}", "choices`: choice True: expected float"),
        ("{type: categorical, choices: [1.0, 'a']}", "choices`: choice 'a': expected float"),
    ],
)
def test_a_dataset_option_the_dataset_rejects_stops_tune_before_any_study(
    capsys, tmp_path, monkeypatch, param, fragment
) -> None:
    # `space check` said valid, then 4 of 6 trials failed with "expected float, got True"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(BASE)
    space = tmp_path / "sp.yaml"
    space.write_text(f"base: base.yaml\nparams:\n  data.options.alpha: {param}\n")
    for argv in (["space", "check", str(space)], ["tune", "--space", str(space)]):
        code, _, err = cli(capsys, *argv)
        assert code == 2 and f"{space}:3: `params.data.options.alpha." in err and fragment in err
    assert not (tmp_path / "fedhpo.db").exists()
