"""The dataset registry: name -> builder, option validation, and build_dataset."""

from __future__ import annotations

import inspect
import os
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any

from fedhpo.config import DataConfig, PartitionConfig
from fedhpo.errors import ConfigError, DataError
from fedhpo.plugins import calling, defined_at, qualname
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


def _check_signature(fn: Builder) -> None:
    params = inspect.signature(fn).parameters
    bad = [p.name for p in params.values() if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    if bad or "seed" not in params:
        raise TypeError(
            f"dataset builder {qualname(fn)} must look like fn(*, seed, <options>=<default>) "
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
                f"a dataset named {name!r} is already registered ({qualname(_REGISTRY[name])}); "
                f"register {qualname(fn)} under another name"
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


def _annotation(fn: Builder, param: inspect.Parameter) -> Any:
    """The option's type: its annotation, else its default's type; None: anything."""
    try:
        tp = typing.get_type_hints(fn).get(param.name)
    except Exception:  # an annotation that cannot be resolved: judge by the default
        tp = None
    if tp is None:
        default = param.default
        return None if default is None or default is param.empty else type(default)
    return tp


def _arms(tp: Any) -> tuple[Any, ...]:
    """The members of a union annotation, or ``(tp,)``."""
    union = typing.get_origin(tp) in (typing.Union, types.UnionType)
    return typing.get_args(tp) if union else (tp,)


def _item_type(tp: Any) -> Any:
    """The item annotation of a homogeneous container annotation (int for ``list[int]`` or
    ``tuple[int, ...]``), else None."""
    args = typing.get_args(tp)
    homogeneous = len(args) == 1 or (len(args) == 2 and args[1] is Ellipsis)
    return args[0] if homogeneous and isinstance(typing.get_origin(tp), type) else None


def _coerce_option(value: Any, tp: Any) -> tuple[bool, Any]:
    """(ok, value in canonical form) for an option annotated ``tp`` (None: anything). Ints
    are accepted for floats, paths for strings and strings for paths; a Literal accepts its
    values only, and a list's items are checked against ``list[item]``."""
    arms = _arms(tp)
    if tp is None or Any in arms or (value is None and type(None) in arms):
        return True, value
    for arm in arms:
        if typing.get_origin(arm) is typing.Literal and any(
            type(v) is type(value) and v == value for v in typing.get_args(arm)
        ):
            return True, value
    allowed = tuple(t for t in (typing.get_origin(a) or a for a in arms) if isinstance(t, type))
    paths = [t for t in allowed if issubclass(t, PurePath)]
    if isinstance(value, bool):
        return bool in allowed, value
    if isinstance(value, int) and int not in allowed and float in allowed:
        return True, float(value)
    if isinstance(value, float) and float not in allowed and int in allowed:
        return value.is_integer(), int(value) if value.is_integer() else value
    if isinstance(value, os.PathLike) and str in allowed:
        return True, os.fspath(value)
    if isinstance(value, str) and str not in allowed and paths:
        return True, paths[0](value)
    if not isinstance(value, allowed):
        return False, value
    if not isinstance(value, list) or (item := _list_item(arms)) is None:
        return True, value
    checked = [_coerce_option(v, item) for v in value]
    return all(ok for ok, _ in checked), [v for _, v in checked]


def _list_item(arms: tuple[Any, ...]) -> Any:
    """The item annotation of the arm a list matches (int for ``list[int]``), else None."""
    for arm in arms:
        origin = typing.get_origin(arm)
        if isinstance(origin, type) and issubclass(list, origin):
            return _item_type(arm)
    return None


def _describe(tp: Any) -> str:
    """What an option of annotation ``tp`` accepts, e.g. ``list of int or null``."""
    names = []
    for arm in _arms(tp):
        origin, item = typing.get_origin(arm), _item_type(arm)
        if origin is typing.Literal:
            names.append("one of " + ", ".join(map(repr, typing.get_args(arm))))
        elif arm is type(None):
            names.append("null")
        elif item is not None:
            names.append(f"{origin.__name__} of {_describe(item)}")
        else:
            names.append(getattr(origin or arm, "__name__", str(arm)))
    return " or ".join(names)


def _validated_options(name: str, fn: Builder, options: Mapping[str, Any]) -> dict[str, Any]:
    params = _option_params(fn)
    valid = ", ".join(params) or "(none)"
    out: dict[str, Any] = {}
    for key, value in options.items():
        where = f"data.options.{key}"
        if key not in params:
            raise ConfigError(f"unknown option of dataset {name!r}; valid: {valid}", key=where)
        tp = _annotation(fn, params[key])
        ok, out[key] = _coerce_option(value, tp)
        if not ok:
            raise ConfigError(
                f"expected {_describe(tp)}, got {value!r} ({type(value).__name__})", key=where
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
    with calling(f"dataset {cfg.name!r}", fn, DataError, key="data.name"):
        data = fn(seed=cfg.seed, **options)
    if not isinstance(data, ArrayData):
        raise DataError(
            f"dataset {cfg.name!r} ({defined_at(fn)}) returned {type(data).__name__}; its "
            "builder must return ArrayData",
            key="data.name",
        )
    _check_split(len(data.y), cfg.partition, data.client is not None)
    return federate(data, cfg, cfg.name)


def _check_split(rows: int, part: PartitionConfig, has_clients: bool) -> None:
    """Refuse a label split that cannot work before it draws anything per client: a split of
    ``2**31 - 1`` Dirichlet clients took 17 GB per class before it found them too many."""
    method = part.method or ("natural" if has_clients else "iid")
    if method not in ("dirichlet", "shards"):
        return  # natural keeps the clients there are; iid says it before it draws
    if part.num_clients * part.min_size > rows:
        raise DataError(
            f"a {method} split of {rows:,} rows cannot give {part.num_clients} clients "
            f"min_size={part.min_size} rows each; lower data.partition.num_clients or "
            "data.partition.min_size",
            key="data.partition.num_clients",
        )
    shards = part.num_clients * part.shards_per_client
    if method == "shards" and shards > rows:
        raise DataError(
            f"{part.num_clients} clients of {part.shards_per_client} shards each are "
            f"{shards} shards of {rows:,} rows: some would be empty; lower "
            "data.partition.shards_per_client or data.partition.num_clients",
            key="data.partition.shards_per_client",
        )


def _option(ok: bool, option: str, message: str) -> None:
    if not ok:
        raise ConfigError(message, key=f"data.options.{option}")
