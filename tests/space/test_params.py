"""Param specs validate on construction and map onto Optuna distributions."""

from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from fedhpo.errors import SearchSpaceError
from fedhpo.space import CategoricalParam, Condition, FloatParam, IntParam


def test_float_param_distribution_and_grid() -> None:
    p = FloatParam("client.lr", 1e-4, 1.0, log=True)
    assert p.distribution() == FloatDistribution(1e-4, 1.0, log=True)
    q = FloatParam("client.mu", 0, 1, step=0.25)
    assert isinstance(q.low, float)
    assert q.distribution() == FloatDistribution(0.0, 1.0, step=0.25)
    assert q.grid_values() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert FloatParam("client.mu", 0.1, 0.3, step=0.1).grid_values() == [0.1, 0.2, 0.3]


def test_int_param_distribution_and_grid() -> None:
    p = IntParam("client.local_epochs", 1, 5)
    assert p.distribution() == IntDistribution(1, 5)
    assert p.grid_values() == [1, 2, 3, 4, 5]
    assert IntParam("client.batch_size", 8, 64, step=8).grid_values() == list(range(8, 65, 8))
    assert IntParam("client.batch_size", 8, 64, log=True).distribution().log
    assert IntParam("seed", 1.0, 3.0).high == 3  # integral floats (1e3 in YAML) are accepted
    assert IntParam("seed", 0, 2**31 - 1).high == 2**31 - 1


def test_categorical_param() -> None:
    p = CategoricalParam("server.optimizer", ["sgd", "adam"])
    assert p.choices == ("sgd", "adam")
    assert p.distribution() == CategoricalDistribution(("sgd", "adam"))
    assert p.grid_values() == ["sgd", "adam"]
    assert CategoricalParam("data.partition.method", (None, "iid")).domain() == "null | iid"


@pytest.mark.parametrize(
    ("make", "key", "fragment"),
    [
        (lambda: FloatParam("client.lr", 1.0, 0.1), "low", "must be below"),
        (lambda: FloatParam("client.lr", 0.1, 0.1), "low", "must be below"),
        (lambda: FloatParam("client.lr", 0.0, 1.0, log=True), "low", "drop log: true"),
        (lambda: FloatParam("client.lr", 0.1, 1.0, log=True, step=0.1), "step", "remove one"),
        (lambda: FloatParam("client.mu", 0.0, 1.0, step=0.3), "step", "set the upper bound to 0.9"),
        (lambda: FloatParam("client.mu", 0.0, 1.0, step=-0.1), "step", "must be > 0"),
        (lambda: FloatParam("client.mu", "a", 1.0), "low", "must be a number"),
        (lambda: FloatParam("client.mu", 0.0, float("inf")), "high", "finite"),
        (lambda: FloatParam("client.mu", True, 1.0), "low", "must be a number"),
        (lambda: FloatParam("client.mu", 0.0, 1.0, log="yes"), "log", "true or false"),
        (lambda: FloatParam("", 0.0, 1.0), "name", "dotted config path"),
        (lambda: IntParam("client.local_epochs", 1, 5.5), "high", "must be an integer"),
        (lambda: IntParam("client.local_epochs", 0, 5, log=True), "low", ">= 1"),
        (lambda: IntParam("client.local_epochs", 1, 9, log=True, step=2), "step", "remove one"),
        (lambda: IntParam("client.local_epochs", 1, 6, step=2), "step", "upper bound to 5"),
        (lambda: IntParam("client.local_epochs", 1, 6, step=0), "step", ">= 1"),
        (lambda: IntParam("client.local_epochs", 1, 10**29), "high", "at most 2147483647"),
        (lambda: IntParam("client.local_epochs", 1, 2**31), "high", "(2**31 - 1), got 2147483648"),
        (lambda: IntParam("client.local_epochs", 1, 5, step=2**40), "step", "at most 2147483647"),
        (lambda: CategoricalParam("client.batch_size", []), "choices", "list at least one"),
        (lambda: CategoricalParam("client.batch_size", (16, 32, 16)), "choices", "twice"),
        (lambda: CategoricalParam("client.lr", (1, 1.0)), "choices", "twice"),
        (lambda: CategoricalParam("client.batch_size", ([16],)), "choices", "Optuna stores"),
        (lambda: CategoricalParam("client.batch_size", "16"), "choices", "list of values"),
        (lambda: FloatParam("client.lr", 0.1, 1.0, condition="x"), "when", "condition"),
    ],
)
def test_param_errors(make, key: str, fragment: str) -> None:
    with pytest.raises(SearchSpaceError) as info:
        make()
    assert info.value.key == key
    assert fragment in info.value.message


def test_true_and_one_are_different_choices() -> None:
    assert CategoricalParam("model.options.flag", (True, 1)).choices == (True, 1)


def test_float_grid_needs_step() -> None:
    with pytest.raises(SearchSpaceError, match="step"):
        FloatParam("client.lr", 0.1, 1.0).grid_values()


def test_params_carry_conditions() -> None:
    cond = Condition("server.optimizer", "equal", "adam")
    assert FloatParam("server.beta1", 0.8, 0.99, condition=cond).condition == cond
