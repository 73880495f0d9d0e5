"""Mistakes in plugin code are one line (exit 2) naming what is wrong and where in the plugin:
on import (``--plugin``), and where a registry calls its dataset builder, model factory or
server optimizer; plugin datasets' options are typed by their annotations."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from fedhpo.cli.main import main
from fedhpo.config import DataConfig, PartitionConfig
from fedhpo.errors import ConfigError
from fedhpo.sim import models, server
from fedhpo.sim.data import ArrayData
from fedhpo.sim.datasets import _registry, build_dataset, check_options, register_dataset

HEADER = """\
import numpy as np
from torch import nn
from fedhpo.sim.data import ArrayData
from fedhpo.sim.datasets import register_dataset
from fedhpo.sim.models import register_model
from fedhpo.sim.server import register_server_optimizer


@register_dataset("ok_data")
def ok_data(*, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((200, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    return ArrayData(x=x, y=y, client=None, test_x=x[:50], test_y=y[:50], num_classes=2)


class Opt:
    def __init__(self, cfg):
        pass

    def init(self, params):
        return None

    def step(self, params, delta, state):
        return {k: p + delta[k] for k, p in params.items()}, state
"""

CONFIG = """\
data: {name: ok_data, partition: {method: iid, num_clients: 4, min_size: 5}}
model: {name: logreg}
federation: {rounds: 2, clients_per_round: 2}
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write a plugin module (HEADER + code) into the working directory; returns its name and
    the line of its code marked ``# here``. Registrations do not leak into other tests."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))
    monkeypatch.setattr(models, "_MODELS", dict(models._MODELS))
    monkeypatch.setattr(server, "_OPTIMIZERS", dict(server._OPTIMIZERS))
    names: list[str] = []

    def write(code: str, header: str = HEADER) -> tuple[str, int]:
        name = f"fedhpo_errplug_{tmp_path.name.replace('-', '_')}_{len(names)}"
        names.append(name)
        source = header + code
        (tmp_path / f"{name}.py").write_text(source)
        marked = [i for i, text in enumerate(source.splitlines(), 1) if "# here" in text]
        return name, marked[0] if marked else 0

    yield write
    for name in names:
        sys.modules.pop(name, None)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str) -> None:
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err


# ------------------------------------------------------------ exceptions from plugin code

CASES = {
    "builder_raises": (
        """
@register_dataset("boom_data")
def boom_data(*, seed: int):
    raise RuntimeError("builder exploded")  # here
""",
        "data.name=boom_data",
        ["`data.name`: dataset 'boom_data'", "raised RuntimeError: builder exploded"],
    ),
    "builder_list_x": (
        """
@register_dataset("list_data")
def list_data(*, seed: int):
    x, y = np.zeros((20, 2), np.float32), np.zeros(20, np.int64)
    return ArrayData(x=x.tolist(), y=y, client=None, test_x=x, test_y=y, num_classes=2)  # here
""",
        "data.name=list_data",
        ["dataset 'list_data'", "raised AttributeError: 'list' object has no attribute 'dtype'"],
    ),
    "model_raises": (
        """
@register_model("boom_model")
def boom_model(input_shape, num_classes):
    raise RuntimeError("model factory exploded")  # here
""",
        "model.name=boom_model",
        ["`model.name`: model 'boom_model'", "raised RuntimeError: model factory exploded"],
    ),
    "model_not_a_module": (
        """
@register_model("int_model")  # here
def int_model(input_shape, num_classes):
    return 42
""",
        "model.name=int_model",
        ["model 'int_model'", "returned int", "nn.Module"],
    ),
    "model_output_width": (
        """
@register_model("wide_out")  # here
def wide_out(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], num_classes + 3))
""",
        "model.name=wide_out",
        ["model 'wide_out'", "outputs 5 values per example; the dataset has 2 classes"],
    ),
    "optimizer_init_raises": (
        """
@register_server_optimizer("boom_opt")
class BoomOpt(Opt):
    def __init__(self, cfg):
        raise RuntimeError("server opt ctor exploded")  # here
""",
        "server.optimizer=boom_opt",
        ["`server.optimizer`: server optimizer 'boom_opt'", "RuntimeError: server opt ctor"],
    ),
    "optimizer_without_init": (
        """
@register_server_optimizer("noinit_opt")  # here
class NoInit:
    def __init__(self, cfg):
        pass

    def step(self, params, delta, state):
        return params, state
""",
        "server.optimizer=noinit_opt",
        ["server optimizer 'noinit_opt'", "without init", "init(params)"],
    ),
    "step_raises": (
        """
@register_server_optimizer("step_boom")
class StepBoom(Opt):
    def step(self, params, delta, state):
        raise KeyError("step exploded")  # here
""",
        "server.optimizer=step_boom",
        ["server optimizer 'step_boom'", "raised KeyError: 'step exploded'"],
    ),
    "step_returns_params_only": (
        """
@register_server_optimizer("params_only")
class ParamsOnly(Opt):
    def step(self, params, delta, state):  # here
        return params
""",
        "server.optimizer=params_only",
        ["server optimizer 'params_only'", "step returned dict", "(params, state)"],
    ),
    "step_drops_a_key": (
        """
@register_server_optimizer("drop_key")
class DropKey(Opt):
    def step(self, params, delta, state):  # here
        return {k: p for k, p in params.items() if k != "linear.bias"}, state
""",
        "server.optimizer=drop_key",
        ["server optimizer 'drop_key'", "without 'linear.bias'"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_plugin_error_in_a_run_is_one_line_naming_it_and_its_line(capsys, plugin, case) -> None:
    # each was a traceback with exit code 1, or (wide_out, drop_key) a run that "completed"
    code, override, fragments = CASES[case]
    name, line = plugin(code)
    Path("c.yaml").write_text(CONFIG)
    code_, out, err = cli(capsys, "run", "c.yaml", "--set", override, "--plugin", name)
    one_line_error(code_, err)
    assert all(f in err for f in fragments), err
    assert f"({name}.py:{line})" in err, err
    assert "rounds" not in out  # said before the progress bar: no run was started


def test_a_dataset_builder_error_stops_tune_before_any_study(capsys, plugin) -> None:
    name, line = plugin(CASES["builder_raises"][0])
    Path("base.yaml").write_text(CONFIG.replace("ok_data", "boom_data"))
    Path("sp.yaml").write_text(
        "base: base.yaml\ntuner: {sampler: random, trials: 2}\n"
        "params:\n  client.lr: {type: float, low: 0.01, high: 0.1}\n"
    )
    code, _, err = cli(capsys, "tune", "--space", "sp.yaml", "--plugin", name)
    one_line_error(code, err)
    assert f"dataset 'boom_data' ({name}.py:{line}) raised RuntimeError" in err
    assert not Path("fedhpo.db").exists()


@pytest.mark.parametrize(
    ("case", "setting"),
    [
        ("model_output_width", "model: {name: wide_out}"),
        ("step_drops_a_key", "server: {optimizer: drop_key}"),
    ],
)
def test_a_model_or_optimizer_mistake_stops_tune_before_any_study(
    capsys, plugin, case, setting
) -> None:
    # the data was checked before the study was written, the model and optimizer were not:
    # every trial failed and the study was left behind
    code_text, _, fragments = CASES[case]
    name, _ = plugin(code_text)
    key = setting.split(":")[0]
    Path("base.yaml").write_text(
        "".join(line for line in CONFIG.splitlines(True) if not line.startswith(key))
        + setting
        + "\n"
    )
    Path("sp.yaml").write_text(
        "base: base.yaml\ntuner: {sampler: random, trials: 2}\n"
        "params:\n  client.lr: {type: float, low: 0.01, high: 0.1}\n"
    )
    code, _, err = cli(capsys, "tune", "--space", "sp.yaml", "--plugin", name)
    one_line_error(code, err)
    assert all(f in err for f in fragments) and "trial" not in err
    assert not Path("fedhpo.db").exists()


# ------------------------------------------------------------------------ --plugin NAME


@pytest.mark.parametrize("suffix", ["_data", "x"])
def test_a_missing_dependency_is_not_a_missing_plugin(capsys, plugin, suffix) -> None:
    # `torchvision_data` doing `import torchvision` (not installed) said "not found"
    dependency = "fedhpo_absent_dependency"
    name, line = plugin(f"import {dependency}  # here\n", header="")
    module = Path(f"{name}.py").rename(f"{dependency}{suffix}.py").stem
    code, _, err = cli(capsys, "run", "--plugin", module)
    one_line_error(code, err)
    assert "not found" not in err
    assert f"No module named '{dependency}'" in err and f"{module}.py:{line}" in err
    assert f"it imports '{dependency}'" in err
    sys.modules.pop(module, None)


def test_a_py_file_name_suggests_the_module_name_without_importing_it(capsys, plugin) -> None:
    name, _ = plugin("Path('imported.marker').write_text('yes')\n", "from pathlib import Path\n")
    code, _, err = cli(capsys, "run", "--plugin", f"{name}.py")
    one_line_error(code, err)
    assert f"--plugin {name}" in err and "not found" not in err
    assert not Path("imported.marker").exists() and name not in sys.modules


@pytest.mark.parametrize("given", ["", " ", ".relative"])
def test_an_empty_or_relative_plugin_name_is_a_clear_error(capsys, given) -> None:
    code, _, err = cli(capsys, "run", "--plugin", given)
    one_line_error(code, err)
    assert "`--plugin`" in err and "module name" in err and "Empty module name" not in err


@pytest.mark.parametrize(
    ("decorator", "taken"),
    [("register_model", "mlp"), ("register_server_optimizer", "adam"),
     ("register_dataset", "csv")],
)  # fmt: skip
def test_a_registration_clash_names_the_plugins_line(capsys, plugin, decorator, taken) -> None:
    # it named fedhpo's own file ("fedhpo/sim/models.py:35")
    name, line = plugin(f"\n@{decorator}({taken!r})  # here\ndef taken(*, seed):\n    pass\n")
    code, _, err = cli(capsys, "run", "--plugin", name)
    one_line_error(code, err)
    assert f"{name}.py:{line}: ValueError:" in err and "fedhpo/sim" not in err, err
    assert f"named {taken!r} is already registered" in err and "under another name" in err


# ------------------------------------------------------------------- typed dataset options


@pytest.fixture
def typed_data(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Dataset ``typed`` with Path, Literal and list options; returns the options it got."""
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))
    got: list[dict] = []

    @register_dataset("typed")
    def typed(
        *,
        seed: int,
        root: Path = Path("."),
        cache: Path | None = None,
        mode: Literal["a", "b"] = "a",
        sizes: list[int] = [1],  # noqa: B006
        scales: list[float] | None = None,
    ) -> ArrayData:
        got.append({"root": root, "cache": cache, "mode": mode, "sizes": sizes, "scales": scales})
        x = np.zeros((40, 2), np.float32)
        y = np.arange(40) % 2
        return ArrayData(x=x, y=y, client=None, test_x=x[:4], test_y=y[:4], num_classes=2)

    return got


def _typed(**options: object) -> DataConfig:
    part = PartitionConfig(method="iid", num_clients=2, min_size=1)
    return DataConfig(name="typed", options=options, partition=part)


def test_a_path_option_is_given_as_a_string(typed_data) -> None:
    # `data.options.root: /tmp` was "expected Path, got '/tmp' (str)"
    build_dataset(_typed(root="/tmp/data", cache="c", mode="b", sizes=[2, 3], scales=[1, 0.5]))
    assert typed_data == [
        {
            "root": Path("/tmp/data"),
            "cache": Path("c"),
            "mode": "b",
            "sizes": [2, 3],
            "scales": [1.0, 0.5],
        }
    ]
    assert isinstance(typed_data[0]["scales"][0], float)  # ints are floats in a float list


@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [("mode", "c", "expected one of 'a', 'b', got 'c' (str)"),
     ("mode", 1, "expected one of 'a', 'b', got 1 (int)"),
     ("sizes", ["a", "b"], "expected list of int, got ['a', 'b'] (list)"),
     ("sizes", [1, 2.5], "expected list of int"),
     ("scales", [1, "x"], "expected list of float or null"),
     ("root", 3, "expected Path, got 3 (int)")],
)  # fmt: skip
def test_literal_values_and_list_items_are_checked(typed_data, option, value, fragment) -> None:
    # `Literal["a", "b"]` accepted "c" and `list[int]` accepted [a, b]
    with pytest.raises(ConfigError) as err:
        check_options(_typed(**{option: value}))
    assert err.value.key == f"data.options.{option}" and fragment in err.value.message
    assert typed_data == []
