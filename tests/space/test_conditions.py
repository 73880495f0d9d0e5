"""Conditions: every operator, And / Or composition, text and dict round trips."""

from __future__ import annotations

import pytest

from fedhpo.errors import SearchSpaceError
from fedhpo.space import And, Condition, Or
from fedhpo.space._conditions import condition_from_dict


@pytest.mark.parametrize(
    ("op", "value", "parent_value", "holds"),
    [
        ("equal", "adam", "adam", True),
        ("equal", "adam", "sgd", False),
        ("not_equal", "adam", "sgd", True),
        ("not_equal", "adam", "adam", False),
        ("less", 0.5, 0.1, True),
        ("less", 0.5, 0.5, False),
        ("greater", 1, 2, True),
        ("greater", 1, 1, False),
        ("in", ["adam", "yogi"], "yogi", True),
        ("in", ["adam", "yogi"], "sgd", False),
    ],
)
def test_operators(op: str, value, parent_value, holds: bool) -> None:
    cond = Condition("p", op, value)
    assert cond.holds({"p": parent_value}) is holds


@pytest.mark.parametrize("op", ["equal", "not_equal", "less", "greater", "in"])
def test_inactive_parent_never_holds(op: str) -> None:
    value = [1] if op == "in" else 1
    assert not Condition("p", op, value).holds({})


def test_and_or() -> None:
    a, b = Condition("a", "equal", 1), Condition("b", "less", 0.5)
    both, either = And((a, b)), Or((a, b))
    assert both.holds({"a": 1, "b": 0.1}) and not both.holds({"a": 1, "b": 0.9})
    assert either.holds({"a": 2, "b": 0.1}) and not either.holds({"a": 2, "b": 0.9})
    assert both.parents == either.parents == {"a", "b"}
    nested = And((Or((a, b)), Condition("c", "in", ["x"])))
    assert str(nested) == "(a == 1 or b < 0.5) and c in ['x']"
    assert nested.leaves() == (a, b, Condition("c", "in", ("x",)))


def test_dict_round_trip() -> None:
    cond = Or((And((Condition("a", "in", [1, 2]), Condition("b", "greater", 0))), Condition("c")))
    assert condition_from_dict(cond.to_dict()) == cond


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: Condition("p", "eq", 1), "unknown condition op 'eq'"),
        (lambda: Condition("p", "in", []), "non-empty list"),
        (lambda: Condition("p", "in", "adam"), "non-empty list"),
        (lambda: Condition("p", "less", "a"), "compares with a number"),
        (lambda: Condition("p", "equal", [1]), "{in: [...]}"),
        (lambda: Condition("", "equal", 1), "parent"),
        (lambda: And(()), "non-empty"),
        (lambda: Or(("x",)), "non-empty"),
        (lambda: condition_from_dict({"and": "x"}), "list of conditions"),
    ],
)
def test_condition_errors(make, fragment: str) -> None:
    with pytest.raises(SearchSpaceError, match=None) as info:
        make()
    assert fragment in info.value.message
