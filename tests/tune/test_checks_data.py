"""check_runnable against the data and the models a space's trials will get: validation rows,
dataset option types, model options (each a clean error before a study is written)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from fedhpo.errors import DataError, SearchSpaceError
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


def test_data_that_cannot_be_built_here_is_left_to_whoever_builds_it(tmp_path):
    # `fedhpo space check` calls a space valid whose data is on another machine
    base = BASE.replace(
        "  name: synthetic\n  options: {alpha: 1.0, beta: 1.0, num_clients: 12}\n",
        f"  name: csv\n  options: {{path: {tmp_path / 'elsewhere.csv'}}}\n",
    )
    check_runnable(load_space(write_space(tmp_path, LR, base)))


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
