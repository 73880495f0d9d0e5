"""The dataset registry: name -> builder, option validation, and build_dataset."""

from __future__ import annotations

import inspect
import os
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from fedhpo.config import DataConfig
from fedhpo.errors import ConfigError, DataError
from fedhpo.sim.data import ArrayData, FederatedDataset, federate

Builder = Callable[..., ArrayData]


class _Required:
    def __repr__(self) -> str:
        return "<required>"


REQUIRED: Any = _Required()
"""The 'default' :func:`dataset_options` reports for an option that has none."""

_REGISTRY: dict[str, Builder] = {}

# ------------------------------------------------------------------------------ registry


def relative_note(path: str | os.PathLike[str]) -> str:
    """For an error about a data path: where a relative one was looked for ("" if absolute)."""
    if os.path.isabs(path):
        return ""
    return f" (relative to the working directory {os.getcwd()})"


def _qualname(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _check_signature(fn: Builder) -> None:
    params = inspect.signature(fn).parameters
    bad = [p.name for p in params.values() if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    if bad or "seed" not in params:
        raise TypeError(
            f"dataset builder {_qualname(fn)} must look like fn(*, seed, <options>=<default>) "
            f"(keyword-only parameters, one named seed); offending parameters: {bad or 'seed'}"
        )


def register_dataset(name: str) -> Callable[[Builder], Builder]:
    """Decorator: make ``fn(*, seed, **options) -> ArrayData`` buildable as ``data.name``.

    Every parameter must be keyword-only; all but ``seed`` are the dataset's options
    (``data.options``), typed by their annotations. A taken name raises ``ValueError``, a
    builder of another shape ``TypeError``.
    """

    def decorator(fn: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(
                f"a dataset named {name!r} is already registered ({_qualname(_REGISTRY[name])}); "
                f"register {_qualname(fn)} under another name"
            )
        _check_signature(fn)
        _REGISTRY[name] = fn
        return fn

    return decorator


def list_datasets() -> list[str]:
    """Registered dataset names, sorted."""
    return sorted(_REGISTRY)


def _builder(name: str) -> Builder:
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown dataset {name!r}; registered: {', '.join(list_datasets())} "
            "(a --plugin MODULE can register more)",
            key="data.name",
        )
    return _REGISTRY[name]


def _option_params(fn: Builder) -> dict[str, inspect.Parameter]:
    params = inspect.signature(fn).parameters
    return {k: p for k, p in params.items() if k != "seed"}


def dataset_options(name: str) -> dict[str, Any]:
    """Option name -> default of dataset ``name`` (:data:`REQUIRED` when there is none)."""
    params = _option_params(_builder(name))
    return {k: REQUIRED if p.default is p.empty else p.default for k, p in params.items()}


def _allowed_types(fn: Builder, param: inspect.Parameter) -> tuple[type, ...] | None:
    """Types an option accepts, from its annotation or else its default; None: anything."""
    try:
        tp = typing.get_type_hints(fn).get(param.name)
    except Exception:  # an annotation that cannot be resolved: judge by the default
        tp = None
    if tp is None:
        default = param.default
        return None if default is None or default is param.empty else (type(default),)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
    else:
        args = (tp,)
    if Any in args:
        return None
    literals = [
        type(v) for a in args if typing.get_origin(a) is typing.Literal for v in typing.get_args(a)
    ]
    plain = [typing.get_origin(a) or a for a in args if typing.get_origin(a) is not typing.Literal]
    return tuple(dict.fromkeys(plain + literals))


def _coerce_option(value: Any, allowed: tuple[type, ...] | None) -> tuple[bool, Any]:
    """(ok, value in canonical form); ints are accepted for floats and paths for strings."""
    if allowed is None or (value is None and type(None) in allowed):
        return True, value
    if isinstance(value, bool):
        return bool in allowed, value
    if isinstance(value, int) and int not in allowed and float in allowed:
        return True, float(value)
    if isinstance(value, float) and float not in allowed and int in allowed:
        return value.is_integer(), int(value) if value.is_integer() else value
    if isinstance(value, os.PathLike) and str in allowed:
        return True, os.fspath(value)
    return isinstance(value, allowed), value


def _type_names(allowed: tuple[type, ...]) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in allowed)


def _validated_options(name: str, fn: Builder, options: Mapping[str, Any]) -> dict[str, Any]:
    params = _option_params(fn)
    valid = ", ".join(params) or "(none)"
    out: dict[str, Any] = {}
    for key, value in options.items():
        where = f"data.options.{key}"
        if key not in params:
            raise ConfigError(f"unknown option of dataset {name!r}; valid: {valid}", key=where)
        allowed = _allowed_types(fn, params[key])
        ok, out[key] = _coerce_option(value, allowed)
        if not ok:
            raise ConfigError(
                f"expected {_type_names(allowed or ())}, got {value!r} ({type(value).__name__})",
                key=where,
            )
    for key, p in params.items():
        if p.default is p.empty and key not in out:
            raise ConfigError(
                f"dataset {name!r} needs this option; give it as data.options.{key}",
                key=f"data.options.{key}",
            )
    return out


def check_options(cfg: DataConfig) -> None:
    """Raise :class:`~fedhpo.errors.ConfigError` if dataset ``cfg.name`` does not take
    ``cfg.options`` (unknown, missing or mistyped options), without building anything."""
    _validated_options(cfg.name, _builder(cfg.name), cfg.options)


def build_dataset(cfg: DataConfig) -> FederatedDataset:
    """Build ``cfg.name`` with ``cfg.options``, then partition and split it (:func:`federate`)."""
    fn = _builder(cfg.name)
    options = _validated_options(cfg.name, fn, cfg.options)
    data = fn(seed=cfg.seed, **options)
    if not isinstance(data, ArrayData):
        raise DataError(
            f"builder {_qualname(fn)} returned {type(data).__name__}; it must return ArrayData",
            key="data.name",
        )
    return federate(data, cfg, cfg.name)


def _option(ok: bool, option: str, message: str) -> None:
    if not ok:
        raise ConfigError(message, key=f"data.options.{option}")
