"""The fedhpo search-space format: a full file, defaults, and every validation error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedhpo.config import RunConfig, load_config
from fedhpo.errors import SearchSpaceError
from fedhpo.space import (
    And,
    CategoricalParam,
    Condition,
    Fidelity,
    FloatParam,
    IntParam,
    Objective,
    Or,
    SearchSpace,
    TunerSpec,
    load_space,
    parse_space,
)

FULL = """
base: run.yaml
objective: {metric: val_accuracy, direction: maximize}
fidelity: {rounds: 20, clients_per_round: 10, data_fraction: 0.5, eval_every: 2}
tuner: {sampler: tpe, pruner: median, trials: 40, timeout: 600, seed: 3}
params:
  client.lr: {type: float, low: 1.0e-4, high: 1.0, log: true}
  client.mu: {type: float, low: 0.0, high: 1.0}
  client.local_epochs: {type: int, low: 1, high: 5}
  client.batch_size: {type: categorical, choices: [10, 32, 64]}
  server.optimizer: {type: categorical, choices: [sgd, adam]}
  server.beta1: {type: float, low: 0.8, high: 0.99, when: {server.optimizer: adam}}
  server.momentum: {type: float, low: 0.0, high: 0.9, step: 0.1, when: {server.optimizer: {in: [sgd]}}}
"""


@pytest.fixture
def run_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text("client: {lr: 0.01}\nfederation: {rounds: 200, clients_per_round: 5}\n")
    return path


def test_full_file(write_space, run_yaml: Path) -> None:
    space = load_space(write_space(FULL))
    assert space.format == "fedhpo"
    assert space.base_path == run_yaml
    assert space.base == load_config(run_yaml)
    assert space.objectives == (Objective("val_accuracy", "maximize"),)
    assert not space.is_multi_objective
    assert space.fidelity == Fidelity(
        rounds=20, clients_per_round=10, data_fraction=0.5, report_every=2
    )
    assert space.tuner == TunerSpec("tpe", "median", 40, timeout=600, seed=3, promote=0)
    assert space.fidelity.report_every == 2  # the old key name eval_every still reads
    assert space.param("client.lr") == FloatParam("client.lr", 1e-4, 1.0, log=True)
    assert space.param("client.local_epochs") == IntParam("client.local_epochs", 1, 5)
    assert space.param("client.batch_size") == CategoricalParam("client.batch_size", (10, 32, 64))
    assert space.param("server.beta1").condition == Condition("server.optimizer", "equal", "adam")
    assert space.param("server.momentum").condition == Condition("server.optimizer", "in", ["sgd"])
    assert space.param("server.momentum").step == pytest.approx(0.1)
    config = space.config_for({"client.lr": 0.5})
    assert (config.client.lr, config.federation.rounds, config.data.fraction) == (0.5, 20, 0.5)


def test_defaults(space_of) -> None:
    space = space_of("params: {client.lr: {type: float, low: 0.01, high: 1}}")
    assert space.base == RunConfig() and space.base_path is None
    assert space.objectives == (Objective("val_accuracy", "maximize"),)
    assert space.fidelity == Fidelity()
    # the default search: successive halving, a budget of 10 full runs, no promotion
    assert space.tuner == TunerSpec("tpe", "successive_halving", None, 10.0, promote=0)
    assert space.config_for() == RunConfig()


def test_shorthands(space_of) -> None:
    space = space_of(
        """
        objective: [val_loss, {metric: bytes_sent}]
        params:
          client.batch_size: [16, 32]
          server.optimizer: {choices: [sgd, adam]}
          client.lr: {type: float, low: 0.01, high: 1, when: {any: [{client.batch_size: 16}, {server.optimizer: {not_equal: sgd}}]}}
          client.mu: {type: float, low: 0, high: 1, when: {client.lr: {greater: 0.1, less: 0.5}, client.batch_size: 32}}
        """
    )
    assert space.is_multi_objective
    assert space.directions == ["minimize", "minimize"]
    assert space.tuner.pruner == "none"  # Optuna cannot prune multi-objective studies
    assert space.param("client.batch_size").choices == (16, 32)
    assert space.param("server.optimizer").kind == "categorical"
    assert space.param("client.lr").condition == Or(
        (
            Condition("client.batch_size", "equal", 16),
            Condition("server.optimizer", "not_equal", "sgd"),
        )
    )
    assert space.param("client.mu").condition == And(
        (
            Condition("client.lr", "greater", 0.1),
            Condition("client.lr", "less", 0.5),
            Condition("client.batch_size", "equal", 32),
        )
    )


def test_int_param_on_float_field_and_choices_normalized(space_of) -> None:
    space = space_of(
        """
        params:
          client.mu: {type: int, low: 0, high: 3}
          client.lr: {type: categorical, choices: [1, 0.5]}
          client.batch_size: {type: categorical, choices: [16.0, 32]}
          data.partition.method: {type: categorical, choices: [null, iid, dirichlet]}
          model.options.hidden: {type: int, low: 8, high: 64}
          model.options.act: [relu, tanh]
        """
    )
    assert space.param("client.lr").choices == (1.0, 0.5)
    assert [type(c) for c in space.param("client.batch_size").choices] == [int, int]
    assert space.config_for({"client.mu": 2, "model.options.hidden": 16}).client.mu == 2.0


def test_dependency_order_puts_parents_first(space_of) -> None:
    space = space_of(
        """
        params:
          client.mu: {type: float, low: 0, high: 1, when: {client.lr: {less: 0.5}}}
          client.lr: {type: float, low: 0.01, high: 1, when: {server.optimizer: sgd}}
          server.optimizer: [sgd, adam]
          client.local_epochs: {type: int, low: 1, high: 3}
        """
    )
    assert space.names == ["server.optimizer", "client.local_epochs", "client.lr", "client.mu"]


def test_valid_file_order_is_kept(space_of) -> None:
    space = space_of(
        """
        params:
          server.optimizer: [sgd, adam]
          server.momentum: {type: float, low: 0, high: 0.9, when: {server.optimizer: sgd}}
          client.lr: {type: float, low: 0.01, high: 1}
        """
    )
    assert space.names == ["server.optimizer", "server.momentum", "client.lr"]


def test_to_dict_is_json_and_round_trips(write_space, run_yaml: Path) -> None:
    space = load_space(write_space(FULL))
    data = json.loads(json.dumps(space.to_dict()))
    assert data["params"][0]["name"] == "client.lr"
    assert SearchSpace.from_dict(data) == space


def test_base_argument_overrides_the_file(write_space, run_yaml: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text("client: {lr: 0.2}\n")
    path = write_space(FULL)
    assert load_space(path, base=other).base.client.lr == 0.2
    assert load_space(path, base=other).base_path == other
    given = RunConfig().with_values({"client.lr": 0.3})
    assert load_space(path, base=given).base is given


def test_parse_space_from_a_dict() -> None:
    space = parse_space({"params": {"client.lr": {"type": "float", "low": 0.1, "high": 1}}})
    assert space.source == "<memory>"
    with pytest.raises(SearchSpaceError) as info:
        parse_space({"params": {"client.lr": {"type": "float", "low": 1, "high": 0.1}}}, source="x")
    assert str(info.value).startswith("x: `params.client.lr.low`")


def test_bounds_are_checked_against_the_base_and_fidelity(write_space, tmp_path: Path) -> None:
    (tmp_path / "run.yaml").write_text("federation: {client_fraction: 0.5}\n")
    # tuning the cohort size clears client_fraction instead of tripping the config's exclusivity
    text = "base: run.yaml\nparams:\n  federation.clients_per_round: {type: int, low: 1, high: 8}\n"
    space = load_space(write_space(text))
    assert space.config_for({"federation.clients_per_round": 4}).federation.client_fraction is None
    with pytest.raises(SearchSpaceError, match="must be in"):
        load_space(
            write_space("params:\n  federation.client_fraction: {type: float, low: 0.5, high: 2}\n")
        )


def test_programmatic_space_is_validated() -> None:
    with pytest.raises(SearchSpaceError) as info:
        SearchSpace(params=(FloatParam("client.momentum", 0.0, 1.0),))
    assert info.value.key == "params.client.momentum.high"
    with pytest.raises(SearchSpaceError, match="no params"):
        SearchSpace(params=())
    with pytest.raises(SearchSpaceError, match="listed twice"):
        SearchSpace(params=(FloatParam("client.lr", 0.1, 1), FloatParam("client.lr", 0.1, 1)))
