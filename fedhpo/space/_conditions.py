"""Conditions that switch a parameter on: parent comparisons composed with And / Or."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from fedhpo.errors import SearchSpaceError

OPS = ("equal", "not_equal", "less", "greater", "in")
"""Condition operators, as in FederatedScope / ConfigSpace."""

_SYMBOLS = {"equal": "==", "not_equal": "!=", "less": "<", "greater": ">", "in": "in"}


def is_scalar(value: Any) -> bool:
    """A value Optuna can store as a categorical choice: null, bool, int, finite float, str."""
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (bool, int, str))


def is_number(value: Any) -> bool:
    """An int or finite float (bools are not numbers here)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


@dataclass(frozen=True)
class Condition:
    """``parent <op> value``; holds only when the parent is active in the trial."""

    parent: str
    op: str = "equal"
    value: Any = None
    """A scalar; for ``in`` a tuple of scalars; for ``less``/``greater`` a number."""

    def __post_init__(self) -> None:
        if not isinstance(self.parent, str) or not self.parent:
            raise SearchSpaceError(f"a condition needs a parent param name, got {self.parent!r}")
        if self.op not in OPS:
            raise SearchSpaceError(
                f"unknown condition op {self.op!r}; use one of: {', '.join(OPS)}"
            )
        if self.op == "in":
            ok = isinstance(self.value, (list, tuple)) and len(self.value) > 0
            if not ok or not all(is_scalar(v) for v in self.value):
                raise SearchSpaceError(
                    f"`in` needs a non-empty list of values, got {self.value!r}; "
                    "write e.g. {in: [adam, yogi]}"
                )
            object.__setattr__(self, "value", tuple(self.value))
        elif self.op in ("less", "greater"):
            if not is_number(self.value):
                raise SearchSpaceError(f"`{self.op}` compares with a number, got {self.value!r}")
        elif not is_scalar(self.value):
            raise SearchSpaceError(
                f"a condition value must be a number, string, true/false or null, "
                f"got {self.value!r}; for several values use {{in: [...]}}"
            )

    @property
    def parents(self) -> frozenset[str]:
        """Names of the params this condition reads."""
        return frozenset((self.parent,))

    def leaves(self) -> tuple[Condition, ...]:
        """The plain comparisons in this condition."""
        return (self,)

    def holds(self, values: Mapping[str, Any]) -> bool:
        """True if the parent is active (in ``values``) and the comparison is true."""
        if self.parent not in values:
            return False
        got = values[self.parent]
        if self.op == "equal":
            return bool(got == self.value)
        if self.op == "not_equal":
            return bool(got != self.value)
        if self.op == "in":
            return got in self.value
        if not is_number(got):
            return False
        return bool(got < self.value) if self.op == "less" else bool(got > self.value)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; :func:`condition_from_dict` reads it back."""
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"parent": self.parent, "op": self.op, "value": value}

    def __str__(self) -> str:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return f"{self.parent} {_SYMBOLS[self.op]} {value!r}"


@dataclass(frozen=True)
class _Compound:
    """A condition made of ``conditions``, combined by ``all`` (And) or ``any`` (Or)."""

    conditions: tuple[AnyCondition, ...]
    word: ClassVar[str]
    combine: ClassVar[Callable[[Iterable[bool]], bool]]

    def __post_init__(self) -> None:
        _check_parts(self, type(self).__name__)

    @property
    def parents(self) -> frozenset[str]:
        """Names of the params this condition reads."""
        return frozenset().union(*(c.parents for c in self.conditions))

    def leaves(self) -> tuple[Condition, ...]:
        """The plain comparisons in this condition."""
        return tuple(leaf for c in self.conditions for leaf in c.leaves())

    def holds(self, values: Mapping[str, Any]) -> bool:
        """True if all parts (And) or any part (Or) hold."""
        return type(self).combine(c.holds(values) for c in self.conditions)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {self.word: [c.to_dict() for c in self.conditions]}

    def __str__(self) -> str:
        def part(c: AnyCondition) -> str:
            nested = isinstance(c, _Compound) and type(c) is not type(self)
            return f"({c})" if nested else str(c)

        return f" {self.word} ".join(part(c) for c in self.conditions)


@dataclass(frozen=True)
class And(_Compound):
    """Holds when every one of ``conditions`` holds."""

    word: ClassVar[str] = "and"
    combine: ClassVar[Callable[[Iterable[bool]], bool]] = all


@dataclass(frozen=True)
class Or(_Compound):
    """Holds when at least one of ``conditions`` holds."""

    word: ClassVar[str] = "or"
    combine: ClassVar[Callable[[Iterable[bool]], bool]] = any


AnyCondition = Condition | And | Or
"""A condition tree: a comparison, or an And / Or of condition trees."""


def _check_parts(node: _Compound, name: str) -> None:
    parts = tuple(node.conditions) if isinstance(node.conditions, (list, tuple)) else ()
    if not parts or not all(isinstance(c, (Condition, And, Or)) for c in parts):
        raise SearchSpaceError(f"{name} needs a non-empty list of conditions")
    object.__setattr__(node, "conditions", parts)


def all_of(conditions: list[AnyCondition]) -> AnyCondition:
    """One condition if there is one, else their And."""
    return conditions[0] if len(conditions) == 1 else And(tuple(conditions))


def condition_from_dict(data: Any) -> AnyCondition:
    """Inverse of ``to_dict`` on :class:`Condition`, :class:`And` and :class:`Or`."""
    if not isinstance(data, Mapping):
        raise SearchSpaceError(f"a stored condition must be a mapping, got {data!r}")
    for key, cls in (("and", And), ("or", Or)):
        if key in data:
            parts = data[key]
            if not isinstance(parts, list):
                raise SearchSpaceError(f"`{key}` needs a list of conditions, got {parts!r}")
            return cls(tuple(condition_from_dict(p) for p in parts))
    return Condition(str(data.get("parent", "")), data.get("op", "equal"), data.get("value"))
