"""The search spaces shipped in searchspaces/ load, describe and round-trip."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from fedhpo.space import SearchSpace, describe, load_space, suggest

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "searchspaces").glob("*.yaml"))


def test_the_three_spaces_ship() -> None:
    assert {p.name for p in SHIPPED} >= {"lr_mu.yaml", "fedopt.yaml", "fmnist_cnn.yaml"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_space_loads(path: Path) -> None:
    space = load_space(path)
    assert space.format == "fedhpo"
    assert space.base_path is not None and space.base_path.exists()
    assert [row["name"] for row in describe(space)] == space.names
    assert SearchSpace.from_dict(json.loads(json.dumps(space.to_dict()))) == space
    values = suggest(space, optuna.create_study().ask())
    space.config_for(values)


def test_lr_mu() -> None:
    space = load_space(REPO / "searchspaces" / "lr_mu.yaml")
    assert space.names == ["client.lr", "client.mu"]
    assert space.param("client.lr").log
    # no fidelity or tuner section: the default search (a budget of 10 full runs, successive
    # halving up to the base config's rounds, no promotion)
    assert space.fidelity.rounds is None
    t = space.tuner
    assert (t.sampler, t.pruner, t.trials, t.budget) == ("tpe", "successive_halving", None, 10.0)
    assert (t.promote, t.seeds) == (0, 2)


def test_fedopt_conditions() -> None:
    space = load_space(REPO / "searchspaces" / "fedopt.yaml")
    rows = {r["name"]: r for r in describe(space)}
    assert rows["server.momentum"]["condition"] == "server.optimizer == 'sgd'"
    assert rows["server.beta1"]["condition"] == "server.optimizer in ['adam', 'yogi']"
    assert space.param("server.optimizer").choices == ("sgd", "adam", "yogi", "adagrad")


def test_fmnist_cnn_params() -> None:
    space = load_space(REPO / "searchspaces" / "fmnist_cnn.yaml")
    assert set(space.names) >= {
        "client.lr",
        "client.momentum",
        "client.batch_size",
        "client.local_epochs",
        "server.lr",
        "server.momentum",
    }
