"""FederatedScope autotune files and FedEx grid lists, read as they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedhpo.config import RunConfig, field_info
from fedhpo.errors import SearchSpaceError
from fedhpo.space import (
    FS_ALIASES,
    And,
    CategoricalParam,
    Condition,
    FloatParam,
    IntParam,
    Or,
    describe,
    detect_format,
    grid_search_space,
    load_space,
)

from .conftest import FIXTURES


def test_fs_fixture() -> None:
    space = load_space(FIXTURES / "fs_fedprox.yaml")
    assert space.format == "federatedscope"
    assert space.base == RunConfig() and space.base_path is None
    assert space.tuner.sampler == "tpe"
    assert space.param("client.lr") == FloatParam("client.lr", 0.001, 1.0, log=True)
    assert space.param("client.local_steps") == IntParam("client.local_steps", 1, 8)
    assert space.param("client.batch_size") == CategoricalParam("client.batch_size", (16, 32, 64))
    assert space.param("client.momentum").condition == Condition("client.local_steps", "greater", 1)
    assert space.param("client.mu").condition == And(
        (
            Condition("client.batch_size", "in", [16, 32]),
            Condition("client.lr", "less", 0.5),
        )
    )
    assert dict(space.renamed)["fedprox.mu"] == "client.mu"
    rows = {r["name"]: r for r in describe(space)}
    assert rows["client.mu"]["from"] == "fedprox.mu"
    assert rows["client.mu"]["condition"] == "client.batch_size in [16, 32] and client.lr < 0.5"


def test_fs_base_argument(tmp_path: Path) -> None:
    (tmp_path / "run.yaml").write_text("client: {lr: 0.3}\n")
    space = load_space(FIXTURES / "fs_fedprox.yaml", base=tmp_path / "run.yaml")
    assert space.base.client.lr == 0.3 and space.base_path == tmp_path / "run.yaml"


def test_unsupported_keys_are_all_listed() -> None:
    with pytest.raises(SearchSpaceError) as info:
        load_space(FIXTURES / "fs_dropout.yaml")
    error = info.value
    assert (error.key, error.line) == ("model.dropout", 12)
    assert "`model.dropout` (line 12" in error.message
    assert "`model.hidden` (line 19" in error.message
    assert "weight_decay" not in error.message.split("Supported")[0]
    assert "Supported FederatedScope keys: train.optimizer.lr" in error.message
    assert str(error).startswith(f"{FIXTURES / 'fs_dropout.yaml'}:12: `model.dropout`")


def test_fedex_grid_form() -> None:
    space = load_space(FIXTURES / "fedex_grid.yaml")
    assert space.format == "grid"
    assert space.tuner.sampler == "grid" and space.tuner.trials == 4 * 4 * 2
    assert grid_search_space(space) == {
        "client.lr": [0.01, 0.02, 0.04, 0.08],
        "client.momentum": [0.1, 0.2, 0.4, 0.8],
        "client.batch_size": [16, 32],
    }


def test_aliases_cover_the_guide() -> None:
    expected = {
        "train.optimizer.lr": "client.lr",
        "optimizer.lr": "client.lr",
        "train.optimizer.momentum": "client.momentum",
        "train.optimizer.weight_decay": "client.weight_decay",
        "train.local_update_steps": "client.local_steps",
        "federate.local_update_steps": "client.local_steps",
        "dataloader.batch_size": "client.batch_size",
        "data.batch_size": "client.batch_size",
        "fedprox.mu": "client.mu",
        "fedopt.optimizer.lr": "server.lr",
        "fedopt.lr_server": "server.lr",
        "fedopt.optimizer.momentum": "server.momentum",
        "federate.sample_client_num": "federation.clients_per_round",
        "federate.sample_client_rate": "federation.client_fraction",
        "federate.total_round_num": "federation.rounds",
        "model.dropout": None,
    }
    assert {k: FS_ALIASES[k] for k in expected} == expected


def test_every_alias_loads(space_of) -> None:
    for key, path in FS_ALIASES.items():
        if path is None:
            continue
        kind = field_info(path).kind
        low, high = (0.1, 0.5) if kind == "float" else (1, 4)
        space = space_of(f"{key}: {{type: {kind}, lower: {low}, upper: {high}}}\n")
        assert space.names == [path]
        assert space.renamed == ((key, path),)


def test_or_condition_and_fedhpo_paths(space_of) -> None:
    space = space_of(
        """
        fedopt.optimizer.lr: {type: float, lower: 0.01, upper: 1.0, log: true}
        client.lr: {type: float, lower: 0.01, upper: 1.0}
        federate.sample_client_num: {type: int, lower: 2, upper: 10, q: 2}
        condition_a:
          type: or
          child: {type: equal, child: client.lr, parent: fedopt.optimizer.lr, value: 0.1}
          parent: {type: not_equal, child: client.lr, parent: federate.sample_client_num, value: 4}
        condition_b: {type: less, child: fedopt.optimizer.lr, parent: federate.sample_client_num, value: 6}
        """
    )
    assert space.param("client.lr").condition == Or(
        (
            Condition("server.lr", "equal", 0.1),
            Condition("federation.clients_per_round", "not_equal", 4),
        )
    )
    assert space.param("federation.clients_per_round").step == 2
    assert space.names[0] == "federation.clients_per_round"


def test_two_conditions_on_one_child_are_anded(space_of) -> None:
    space = space_of(
        """
        fedprox.mu: {type: float, lower: 0.0, upper: 1.0}
        train.optimizer.lr: {type: float, lower: 0.01, upper: 1.0}
        dataloader.batch_size: {type: cate, choices: [16, 32]}
        condition1: {type: equal, child: fedprox.mu, parent: dataloader.batch_size, value: 16}
        condition2: {type: greater, child: fedprox.mu, parent: train.optimizer.lr, value: 0.1}
        """
    )
    assert isinstance(space.param("client.mu").condition, And)


def test_detect_format() -> None:
    assert detect_format({"params": {}}) == "fedhpo"
    assert detect_format({}) == "fedhpo"
    assert detect_format({"a.b": [1, 2]}) == "grid"
    assert detect_format({"a.b": [1, 2], "c.d": {"type": "int"}}) == "federatedscope"


FS_ERRORS = [
    (
        "lower>=upper",
        "train.optimizer.lr: {type: float, lower: 1.0, upper: 0.1}\n",
        "train.optimizer.lr.lower",
        1,
        "swap them",
    ),
    (
        "log-zero",
        "fedprox.mu: {type: float, lower: 0.0, upper: 1.0, log: true}\n",
        "fedprox.mu.lower",
        1,
        "drop log",
    ),
    (
        "bad-type",
        "fedprox.mu: {type: uniform, lower: 0.0, upper: 1.0}\n",
        "fedprox.mu.type",
        1,
        "float, int or cate",
    ),
    (
        "bad-key",
        "fedprox.mu: {type: float, lower: 0.0, upper: 1.0, low: 2}\n",
        "fedprox.mu.low",
        1,
        "valid keys here: type, lower, upper",
    ),
    ("missing-upper", "fedprox.mu: {type: float, lower: 0.0}\n", "fedprox.mu", 1, "needs `upper`"),
    (
        "config-rejects",
        "fedprox.mu: {type: float, lower: -1.0, upper: 1.0}\n",
        "fedprox.mu.lower",
        1,
        "must be >= 0",
    ),
    (
        "float-on-int",
        "train.local_update_steps: {type: float, lower: 1, upper: 4}\n",
        "train.local_update_steps.type",
        1,
        "use type: int",
    ),
    (
        "same-target",
        "optimizer.lr: {type: float, lower: 0.1, upper: 1}\ntrain.optimizer.lr: {type: float, lower: 0.1, upper: 1}\n",
        "train.optimizer.lr",
        2,
        "keep one",
    ),
    ("not-a-mapping", "fedprox.mu: 0.5\n", "fedprox.mu", 1, "must be a mapping"),
    (
        "cond-type",
        "fedprox.mu: {type: float, lower: 0, upper: 1}\ntrain.optimizer.lr: {type: float, lower: 0.1, upper: 1}\ncondition1: {type: lt, child: fedprox.mu, parent: train.optimizer.lr, value: 1}\n",
        "condition1.type",
        3,
        "equal, not_equal, less, greater, in, and, or",
    ),
    (
        "cond-parent",
        "fedprox.mu: {type: float, lower: 0, upper: 1}\ncondition1: {type: less, child: fedprox.mu, parent: train.optimizer.lr, value: 1}\n",
        "condition1.parent",
        2,
        "not a hyperparameter of this file",
    ),
    (
        "cond-missing",
        "fedprox.mu: {type: float, lower: 0, upper: 1}\ntrain.optimizer.lr: {type: float, lower: 0.1, upper: 1}\ncondition1: {type: less, child: fedprox.mu, parent: train.optimizer.lr}\n",
        "condition1",
        3,
        "needs `value`",
    ),
    (
        "cond-key",
        "fedprox.mu: {type: float, lower: 0, upper: 1}\ncondition1: {type: less, kid: fedprox.mu}\n",
        "condition1.kid",
        2,
        "valid keys here: type, child, parent, value",
    ),
    (
        "and-children",
        "fedprox.mu: {type: float, lower: 0, upper: 1}\ntrain.optimizer.lr: {type: float, lower: 0.1, upper: 1}\ncondition1:\n  type: and\n  child: {type: less, child: fedprox.mu, parent: train.optimizer.lr, value: 0.5}\n  parent: {type: less, child: train.optimizer.lr, parent: fedprox.mu, value: 0.5}\n",
        "condition1",
        3,
        "same child",
    ),
    (
        "cond-value",
        "fedprox.mu: {type: float, lower: 0, upper: 1}\ndataloader.batch_size: {type: cate, choices: [16, 32]}\ncondition1: {type: equal, child: fedprox.mu, parent: dataloader.batch_size, value: 64}\n",
        "condition1",
        3,
        "would never hold",
    ),
    (
        "cycle",
        "fedprox.mu: {type: float, lower: 0.1, upper: 1}\ntrain.optimizer.lr: {type: float, lower: 0.1, upper: 1}\ncondition1: {type: less, child: fedprox.mu, parent: train.optimizer.lr, value: 0.5}\ncondition2: {type: less, child: train.optimizer.lr, parent: fedprox.mu, value: 0.5}\n",
        "condition1",
        3,
        "cycle",
    ),
    (
        "no-params",
        "condition1: {type: less, child: a, parent: b, value: 1}\n",
        None,
        None,
        "no hyperparameters",
    ),
    ("typo-of-fedhpo-key", "parms: {client.lr: 1}\n", "parms", 1, "top-level keys base, objective"),
]


@pytest.mark.parametrize(
    ("text", "key", "line", "fragment"), [e[1:] for e in FS_ERRORS], ids=[e[0] for e in FS_ERRORS]
)
def test_fs_errors(
    write_space, text: str, key: str | None, line: int | None, fragment: str
) -> None:
    path = write_space(text)
    with pytest.raises(SearchSpaceError) as info:
        load_space(path)
    error = info.value
    assert (error.key or None, error.line, error.source) == (key, line, str(path))
    assert fragment in error.message
