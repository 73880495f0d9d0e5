"""Typed parameter specs (float, int, categorical) that validate themselves on construction."""

from __future__ import annotations

import decimal
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import BaseTrial

from fedhpo.errors import SearchSpaceError
from fedhpo.space._conditions import And, AnyCondition, Condition, Or, is_number, is_scalar

MAX_GRID = 1_000_000

MAX_INT = 2**31 - 1
"""Largest magnitude of an int param's bounds and step: no run-config field takes more (and
costing a run multiplies them, e.g. local epochs by batches)."""


def _fail(key: str, message: str) -> SearchSpaceError:
    return SearchSpaceError(message, key=key)


def _to_float(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(key, f"must be a number, got {value!r}")
    try:
        out = float(value)
    except OverflowError:
        out = math.inf
    if not math.isfinite(out):
        raise _fail(key, f"must be a finite number, got {value!r}")
    return out


def _to_int(value: Any, key: str) -> int:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not is_number(value) or isinstance(value, float):
        raise _fail(key, f"must be an integer, got {value!r}")
    if value > MAX_INT:
        raise _fail(key, f"must be at most {MAX_INT} (2**31 - 1), got {value}")
    if value < -MAX_INT:
        raise _fail(key, f"must be at least -{MAX_INT} (-(2**31 - 1)), got {value}")
    return int(value)


def as_decimal(value: float) -> Decimal:
    """A number as the decimal it is written as (``0.1``, not the binary float's expansion)."""
    return Decimal(value) if isinstance(value, int) else Decimal(repr(float(value)))


def snap_to_step(value: float, low: float, step: float) -> float:
    """The point of the grid ``low + k * step`` nearest ``value``, as the decimal the grid
    means: Optuna's samplers compute ``0.1 + 2 * 0.1`` in binary (0.30000000000000004);
    this gives 0.3, what a trial trains with and what is stored."""
    low_d, step_d = as_decimal(low), as_decimal(step)
    k = ((as_decimal(value) - low_d) / step_d).to_integral_value(decimal.ROUND_HALF_EVEN)
    return float(low_d + k * step_d)


def _check_common(name: Any, log: Any, condition: Any) -> None:
    if not isinstance(name, str) or not name:
        raise _fail("name", f"a param needs a dotted config path as its name, got {name!r}")
    if not isinstance(log, bool):
        raise _fail("log", f"must be true or false, got {log!r}")
    if condition is not None and not isinstance(condition, (Condition, And, Or)):
        raise _fail("when", f"must be a condition, got {condition!r}")


def _check_range(low: float, high: float) -> None:
    if low >= high:
        raise _fail(
            "low",
            f"the lower bound ({low:g}) must be below the upper bound ({high:g}); "
            "swap them or widen the range",
        )


def _check_step_fits(low: float, high: float, step: float) -> None:
    try:
        rest = (Decimal(str(high)) - Decimal(str(low))) % Decimal(str(step))
        count = (Decimal(str(high)) - Decimal(str(low))) // Decimal(str(step))
    except decimal.InvalidOperation:
        raise _fail(
            "step", f"step {step:g} is too small for the range [{low:g}, {high:g}]"
        ) from None
    if rest != 0:
        fixed = Decimal(str(low)) + count * Decimal(str(step))
        raise _fail(
            "step",
            f"the range [{low:g}, {high:g}] is not a whole number of steps of {step:g}; "
            f"set the upper bound to {float(fixed):g} or change the step",
        )


@dataclass(frozen=True)
class FloatParam:
    """A real-valued parameter in ``[low, high]``, optionally on a log scale or a grid."""

    name: str
    low: float
    high: float
    log: bool = False
    step: float | None = None
    condition: AnyCondition | None = None

    def __post_init__(self) -> None:
        _check_common(self.name, self.log, self.condition)
        low, high = _to_float(self.low, "low"), _to_float(self.high, "high")
        _check_range(low, high)
        if not math.isfinite(high - low):
            raise _fail("high", f"the range [{low:g}, {high:g}] is too wide")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        if self.log and low <= 0:
            raise _fail(
                "low",
                f"a log scale needs a lower bound > 0, got {low:g}; "
                "raise it (e.g. 1e-4) or drop log: true",
            )
        if self.step is not None:
            step = _to_float(self.step, "step")
            if step <= 0:
                raise _fail("step", f"step must be > 0, got {step:g}")
            if self.log:
                raise _fail("step", "step and log: true cannot be combined; remove one of them")
            _check_step_fits(low, high, step)
            object.__setattr__(self, "step", step)

    @property
    def kind(self) -> str:
        """``"float"``."""
        return "float"

    def distribution(self) -> BaseDistribution:
        """The Optuna distribution of this param."""
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def suggest(self, trial: BaseTrial) -> float:
        """``trial.suggest_float`` under this param's name; a value on a step grid comes back
        as its clean decimal (:func:`snap_to_step`)."""
        value = trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)
        return value if self.step is None else snap_to_step(value, self.low, self.step)

    def grid_values(self) -> list[float]:
        """Every value on the step grid; needs ``step``."""
        if self.step is None:
            raise _fail(
                "step",
                f"a float param has no finite grid without a step; add e.g. "
                f"step: {(self.high - self.low) / 10:g}, or use type: categorical",
            )
        low, step = as_decimal(self.low), as_decimal(self.step)
        count = int((as_decimal(self.high) - low) // step) + 1
        if count > MAX_GRID:
            raise _fail("step", f"the grid has {count} values; use a coarser step")
        return [float(low + i * step) for i in range(count)]

    def domain(self) -> str:
        """The range as text, e.g. ``[0.0001, 1]``."""
        return f"[{self.low:g}, {self.high:g}]"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (see :func:`param_from_dict`)."""
        return {
            "name": self.name,
            "type": "float",
            "low": self.low,
            "high": self.high,
            "log": self.log,
            "step": self.step,
            "condition": None if self.condition is None else self.condition.to_dict(),
        }


@dataclass(frozen=True)
class IntParam:
    """An integer parameter in ``[low, high]`` (both included), every ``step``-th value."""

    name: str
    low: int
    high: int
    log: bool = False
    step: int = 1
    condition: AnyCondition | None = None

    def __post_init__(self) -> None:
        _check_common(self.name, self.log, self.condition)
        low, high, step = _to_int(self.low, "low"), _to_int(self.high, "high"), self.step
        step = _to_int(step, "step")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "step", step)
        _check_range(low, high)
        if step < 1:
            raise _fail("step", f"step must be >= 1, got {step}")
        if self.log and step != 1:
            raise _fail("step", "step and log: true cannot be combined; remove one of them")
        if self.log and low < 1:
            raise _fail(
                "low", f"a log scale over integers needs a lower bound >= 1, got {low}; raise it"
            )
        if (high - low) % step:
            fixed = low + (high - low) // step * step
            raise _fail(
                "step",
                f"the range [{low}, {high}] is not a whole number of steps of {step}; "
                f"set the upper bound to {fixed} or change the step",
            )

    @property
    def kind(self) -> str:
        """``"int"``."""
        return "int"

    def distribution(self) -> BaseDistribution:
        """The Optuna distribution of this param."""
        return IntDistribution(self.low, self.high, log=self.log, step=self.step)

    def suggest(self, trial: BaseTrial) -> int:
        """``trial.suggest_int`` under this param's name."""
        return trial.suggest_int(self.name, self.low, self.high, step=self.step, log=self.log)

    def grid_values(self) -> list[int]:
        """Every value from ``low`` to ``high`` by ``step``."""
        count = (self.high - self.low) // self.step + 1
        if count > MAX_GRID:
            raise _fail("high", f"the grid has {count} values; use a larger step or narrow it")
        return list(range(self.low, self.high + 1, self.step))

    def domain(self) -> str:
        """The range as text, e.g. ``[1, 5]``."""
        return f"[{self.low}, {self.high}]"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (see :func:`param_from_dict`)."""
        return {
            "name": self.name,
            "type": "int",
            "low": self.low,
            "high": self.high,
            "log": self.log,
            "step": self.step,
            "condition": None if self.condition is None else self.condition.to_dict(),
        }


def choice_key(value: Any) -> tuple[str, Any]:
    """Identity of a choice: ``1`` and ``1.0`` are the same choice, ``True`` is not ``1``."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    return (type(value).__name__, value)


@dataclass(frozen=True)
class CategoricalParam:
    """A parameter taking one of ``choices`` (numbers, strings, true/false or null)."""

    name: str
    choices: tuple[Any, ...]
    condition: AnyCondition | None = None

    def __post_init__(self) -> None:
        _check_common(self.name, False, self.condition)
        if not isinstance(self.choices, (list, tuple)):
            raise _fail("choices", f"must be a list of values, got {self.choices!r}")
        if not self.choices:
            raise _fail("choices", "choices is empty; list at least one value, e.g. [16, 32]")
        seen: set[tuple[str, Any]] = set()
        for value in self.choices:
            if not is_scalar(value):
                raise _fail(
                    "choices",
                    f"choice {value!r} is not a number, string, true/false or null; "
                    "Optuna stores only those",
                )
            if choice_key(value) in seen:
                raise _fail("choices", f"choice {value!r} is listed twice; remove the duplicate")
            seen.add(choice_key(value))
        object.__setattr__(self, "choices", tuple(self.choices))

    @property
    def kind(self) -> str:
        """``"categorical"``."""
        return "categorical"

    def distribution(self) -> BaseDistribution:
        """The Optuna distribution of this param."""
        return CategoricalDistribution(self.choices)

    def suggest(self, trial: BaseTrial) -> Any:
        """``trial.suggest_categorical`` under this param's name."""
        return trial.suggest_categorical(self.name, self.choices)

    def grid_values(self) -> list[Any]:
        """The choices."""
        return list(self.choices)

    def domain(self) -> str:
        """The choices as text, e.g. ``sgd | adam``."""
        return " | ".join("null" if c is None else str(c) for c in self.choices)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (see :func:`param_from_dict`)."""
        return {
            "name": self.name,
            "type": "categorical",
            "choices": list(self.choices),
            "condition": None if self.condition is None else self.condition.to_dict(),
        }


Param = FloatParam | IntParam | CategoricalParam
"""Any parameter spec."""

PARAM_TYPES: dict[str, type] = {
    "float": FloatParam,
    "int": IntParam,
    "categorical": CategoricalParam,
}
"""The ``type:`` names of the fedhpo format and their classes."""
