"""check_runnable against the data and the models a space's trials will get: validation rows,
dataset option types, model options (each a clean error before a study is written)."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from fedhpo.errors import ConfigError, DataError, SearchSpaceError
from fedhpo.sim import models
from fedhpo.sim.evaluation import validation_sample
from fedhpo.sim.models import register_model
from fedhpo.space import load_space
from fedhpo.tune import cached_dataset, check_runnable, tune
from tests.helpers import BASE

LR = "  client.lr: {type: float, low: 0.01, high: 0.5, log: true}\n"


def write_space(tmp_path: Path, params: str, base: str = BASE, objective: str = "val_accuracy"):
    (tmp_path / "base.yaml").write_text(base)
    path = tmp_path / "space.yaml"
    path.write_text(f"base: base.yaml\nobjective: {{metric: {objective}}}\nparams:\n{params}")
    return path


def client_sizes(tmp_path: Path) -> np.ndarray:
    """Rows per client of BASE's federation."""
    folder = tmp_path / "probe"
    folder.mkdir()
    return np.diff(cached_dataset(load_space(write_space(folder, LR)).base.data).offsets)


def with_data(base: str, extra: str) -> str:
    """BASE with more keys in its data section (e.g. `val_fraction: 0.01`)."""
    return base.replace("  name: synthetic\n", f"  name: synthetic\n  {extra}\n")


# ------------------------------------------------------------------------ validation rows


def test_a_val_objective_on_data_without_validation_rows_stops_before_any_study(tmp_path):
    # each client keeps round(val_fraction x rows) for validation: below 0.5 / largest client,
    # none does, and every trial was pruned as "diverged: objective val_accuracy is not finite"
    fraction = 0.4 / int(client_sizes(tmp_path).max())
    path = write_space(tmp_path, LR, with_data(BASE, f"val_fraction: {fraction}"))
    with warnings.catch_warnings(record=True) as notes:
        warnings.simplefilter("always")
        with pytest.raises(DataError, match="no validation rows") as exc:
            check_runnable(load_space(path))
    # the error says it all: the data note saying the same is not printed before it
    assert not [str(n.message) for n in notes if "no validation rows" in str(n.message)]
    assert exc.value.key == "data.val_fraction" and exc.value.source == str(tmp_path / "base.yaml")
    assert "raise data.val_fraction or give clients more rows" in exc.value.message
    db = tmp_path / "never.db"
    with pytest.raises(DataError, match="no validation rows"):
        tune(path, storage=f"sqlite:///{db}", trials=2, log=lambda _: None)
    assert not db.exists()


@pytest.mark.filterwarnings("ignore:data.val_fraction .* gives no validation rows")
def test_a_test_objective_needs_no_validation_rows(tmp_path):
    fraction = 0.4 / int(client_sizes(tmp_path).max())
    base = with_data(BASE, f"val_fraction: {fraction}")
    check_runnable(load_space(write_space(tmp_path, LR, base, objective="test_accuracy")))


def test_the_clients_that_validate_need_validation_rows(tmp_path):
    # one client of twelve validates (federation.val_clients: 1); rows only on the largest
    sizes = client_sizes(tmp_path)
    fraction = 0.6 / int(sizes.max())
    seed = next(s for s in range(50) if sizes[validation_sample(s, len(sizes), 1)[0]] < sizes.max())
    base = with_data(BASE, f"val_fraction: {fraction}").replace("seed: 0", f"seed: {seed}")
    base = base.replace("eval_every: 1", "eval_every: 1, val_clients: 1")
    with pytest.raises(DataError, match="none on the 1 client") as exc:
        check_runnable(load_space(write_space(tmp_path, LR, base)))
    assert "federation.val_clients" in exc.value.message
    ok = with_data(BASE, f"val_fraction: {fraction}")  # all twelve validate: the largest has rows
    check_runnable(load_space(write_space(tmp_path, LR, ok)))


@pytest.mark.parametrize("name", ["csv", "idx", "leaf"])
def test_data_that_cannot_be_built_here_is_left_to_whoever_builds_it(tmp_path, name):
    # `fedhpo space check` calls a space valid whose data is on another machine
    base = BASE.replace(
        "  name: synthetic\n  options: {alpha: 1.0, beta: 1.0, num_clients: 12}\n",
        f"  name: {name}\n  options: {{path: {tmp_path / 'elsewhere'}}}\n",
    )
    check_runnable(load_space(write_space(tmp_path, LR, base)))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        # a file that is here but cannot be read as the data
        ("  name: csv\n  options: {path: PATH}\n", "too few to split off a test set"),
        # a split the data cannot give: more clients than rows
        (
            "  name: synthetic\n  options: {alpha: 1.0, beta: 1.0, num_clients: 12}\n"
            "  partition: {method: iid, num_clients: 100000}\n",
            "num_clients",
        ),
    ],
)
def test_data_that_is_here_but_cannot_be_built_is_an_error(tmp_path, data, problem):
    # only data whose files are not on this machine is left to whoever builds it: `space
    # check` called these valid, and tune then refused them
    (tmp_path / "bad.csv").write_text("a,b\n1,x\n")
    base = BASE.replace(
        "  name: synthetic\n  options: {alpha: 1.0, beta: 1.0, num_clients: 12}\n",
        data.replace("PATH", str(tmp_path / "bad.csv")),
    )
    with pytest.raises(DataError) as exc:
        check_runnable(load_space(write_space(tmp_path, LR, base)))
    assert problem in exc.value.message


def test_base_dataset_options_the_dataset_refuses_are_an_error_at_the_base_file(tmp_path):
    # `space check` said valid ("cost ... not computed: the base config's data cannot be built
    # here"), and tune said "`data.options.dim`: must be >= 1, got 0" without a file
    base = BASE.replace("num_clients: 12}", "num_clients: 12, dim: 0}")
    path = write_space(tmp_path, LR, base)
    with pytest.raises(ConfigError, match="must be >= 1, got 0") as exc:
        check_runnable(load_space(path))
    assert exc.value.source == str(tmp_path / "base.yaml") and exc.value.line == 3
    assert str(exc.value).endswith("base.yaml:3: `data.options.dim`: must be >= 1, got 0")
    db = tmp_path / "never.db"
    with pytest.raises(ConfigError, match="base.yaml:3: `data.options.dim`"):
        tune(path, storage=f"sqlite:///{db}", trials=2, log=lambda _: None)
    assert not db.exists()


def test_a_base_value_the_base_file_does_not_give_is_not_placed_in_it(tmp_path):
    # `tune --set data.options.dim=0` changes the base after it is read: line 3 has no 0
    space = load_space(write_space(tmp_path, LR))
    space = dataclasses.replace(space, base=space.base.with_values({"data.options.dim": 0}))
    with pytest.raises(ConfigError) as exc:
        check_runnable(space)
    assert str(exc.value) == "`data.options.dim`: must be >= 1, got 0"


# ----------------------------------------------------------------- dataset option types


def test_a_float_param_on_an_int_dataset_option_is_a_space_error(tmp_path):
    # its ends 10 and 50 passed, then every trial failed: "expected int, got 20.549 (float)"
    param = "  data.options.num_clients: {type: float, low: 10, high: 50}\n"
    path = write_space(tmp_path, param)
    with pytest.raises(SearchSpaceError, match="expected int, got 10.5") as exc:
        check_runnable(load_space(path))
    assert exc.value.key == "params.data.options.num_clients.type" and exc.value.line == 4
    assert "use type: int" in exc.value.message


@pytest.mark.parametrize(
    "param",
    [
        "{type: int, low: 10, high: 50}",
        "{type: categorical, choices: [10, 20]}",
        "{type: float, low: 10, high: 50, step: 5}",  # whole numbers only
    ],
)
def test_whole_number_params_on_an_int_dataset_option_pass(tmp_path, param):
    check_runnable(load_space(write_space(tmp_path, f"  data.options.num_clients: {param}\n")))


def test_a_float_param_on_a_float_dataset_option_passes(tmp_path):
    param = "  data.options.alpha: {type: float, low: 0.1, high: 2}\n"
    check_runnable(load_space(write_space(tmp_path, param)))


# ------------------------------------------------------------------------- model options


@pytest.fixture
def model_registry(monkeypatch):
    monkeypatch.setattr(models, "_MODELS", dict(models._MODELS))


MLP_BASE = BASE.replace("model: {name: logreg}", "model: {name: mlp, options: {hidden: [64]}}")


def test_a_model_choice_that_rejects_the_base_model_options_is_a_space_error(tmp_path):
    # the logreg trials failed with "model.options.hidden: unknown option for model 'logreg'"
    param = "  model.name: {type: categorical, choices: [mlp, logreg]}\n"
    path = write_space(tmp_path, param + LR, MLP_BASE)
    with pytest.raises(SearchSpaceError, match="choice 'logreg'") as exc:
        check_runnable(load_space(path))
    assert exc.value.key == "params.model.name.choices" and exc.value.line == 4
    message = exc.value.message
    assert "takes no option 'hidden' (its options: none)" in message
    assert "remove model.options.hidden from the base config" in message


def test_a_searched_model_option_must_suit_every_model_it_applies_to(tmp_path, model_registry):
    @register_model("scaled")
    def scaled(input_shape, num_classes, scale: float = 1.0) -> nn.Module:
        return nn.Linear(int(np.prod(input_shape)), num_classes)

    choices = "  model.name: {type: categorical, choices: [scaled, logreg]}\n"
    scale = "  model.options.scale: {type: float, low: 0.1, high: 1.0}\n"
    with pytest.raises(SearchSpaceError, match="choice 'logreg'.*'scale'.*this space") as exc:
        check_runnable(load_space(write_space(tmp_path, choices + scale)))
    assert "add when: {model.name: scaled} to params.model.options.scale" in exc.value.message
    only_scaled = scale.replace("1.0}", "1.0, when: {model.name: scaled}}")
    check_runnable(load_space(write_space(tmp_path, choices + only_scaled)))


def test_a_model_taking_any_option_takes_the_base_options(tmp_path, model_registry):
    @register_model("anything_goes")
    def anything(input_shape, num_classes, **options: object) -> nn.Module:
        return nn.Linear(int(np.prod(input_shape)), num_classes)

    param = "  model.name: {type: categorical, choices: [mlp, anything_goes]}\n"
    check_runnable(load_space(write_space(tmp_path, param, MLP_BASE)))


def test_a_searched_model_option_the_base_model_does_not_take_is_a_space_error(tmp_path):
    # `space check` said valid; every trial failed "unknown option for model 'logreg'"
    param = '  model.options.hidden: {type: categorical, choices: [16, "x", null]}\n'
    path = write_space(tmp_path, param)
    with pytest.raises(SearchSpaceError, match="model 'logreg' takes no option 'hidden'") as exc:
        check_runnable(load_space(path))
    assert exc.value.key == "params.model.options.hidden" and exc.value.line == 4
    assert exc.value.source == str(path)
    assert exc.value.message == (
        "model 'logreg' takes no option 'hidden' (its options: none), which this space "
        "searches for it; remove params.model.options.hidden, or set model.name in the base "
        "config (or search it) to a model that takes it"
    )
    db = tmp_path / "never.db"
    with pytest.raises(SearchSpaceError, match="takes no option 'hidden'"):
        tune(path, storage=f"sqlite:///{db}", trials=2, log=lambda _: None)
    assert not db.exists()


MLP_ONLY = BASE.replace("model: {name: logreg}", "model: {name: mlp}")


def test_each_choice_of_a_searched_model_option_is_built_as_its_trials_build_it(tmp_path):
    # `space check` said valid; every trial failed "must be a list of positive integers"
    param = "  model.options.hidden: {type: categorical, choices: [16, 32]}\n"
    path = write_space(tmp_path, param, MLP_ONLY)
    with pytest.raises(SearchSpaceError) as exc:
        check_runnable(load_space(path))
    assert exc.value.key == "params.model.options.hidden.choices" and exc.value.line == 4
    assert exc.value.message == (
        "choice 16: `model.options.hidden`: must be a list of positive integers, "
        "e.g. [64, 32], got 16"
    )
    db = tmp_path / "never.db"
    with pytest.raises(SearchSpaceError, match="choice 16: `model.options.hidden`"):
        tune(path, storage=f"sqlite:///{db}", trials=2, log=lambda _: None)
    assert not db.exists()


@pytest.fixture
def wide(model_registry):
    """Model `wide`, whose option `width` must be >= 1."""

    @register_model("wide")
    def wide(input_shape, num_classes, width: int = 4) -> nn.Module:
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        return nn.Sequential(
            nn.Linear(int(np.prod(input_shape)), width), nn.Linear(width, num_classes)
        )


def test_a_model_option_choice_is_built_with_each_model_it_applies_to(tmp_path, wide):
    choices = "  model.name: {type: categorical, choices: [logreg, wide]}\n"
    width = (
        "  model.options.width: {type: categorical, choices: [4, 0], when: {model.name: wide}}\n"
    )
    with pytest.raises(SearchSpaceError) as exc:
        check_runnable(load_space(write_space(tmp_path, choices + width)))
    assert exc.value.key == "params.model.options.width.choices" and exc.value.line == 5
    message = exc.value.message
    assert message.startswith("choice 0 (model 'wide'): model 'wide' (")
    assert message.endswith("raised ValueError: width must be >= 1, got 0; fix it there")
    check_runnable(load_space(write_space(tmp_path, choices + width.replace("[4, 0]", "[4, 8]"))))


def test_the_ends_of_a_model_option_range_are_built(tmp_path, wide):
    base = BASE.replace("model: {name: logreg}", "model: {name: wide}")
    param = "  model.options.width: {type: int, low: 0, high: 8}\n"
    with pytest.raises(SearchSpaceError, match="raised ValueError: width must be >= 1") as exc:
        check_runnable(load_space(write_space(tmp_path, param, base)))
    assert exc.value.key == "params.model.options.width.low" and exc.value.line == 4
    check_runnable(load_space(write_space(tmp_path, param.replace("low: 0", "low: 1"), base)))
