"""FederatedScope autotune search spaces (and FedEx's grid lists), read as they are."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fedhpo._yaml import YamlDoc
from fedhpo.config import RunConfig, field_info
from fedhpo.errors import ConfigError, SearchSpaceError
from fedhpo.space._aliases import FS_ALIASES, why_unsupported
from fedhpo.space._conditions import OPS, And, AnyCondition, Condition, Or, all_of
from fedhpo.space._params import CategoricalParam, FloatParam, IntParam, Param
from fedhpo.space._parse import TOP_KEYS, err, known, mapping, under
from fedhpo.space._settings import TunerSpec
from fedhpo.space._space import SearchSpace

_PARAM_KEYS = ("type", "lower", "upper", "log", "default_value", "choices", "q")
_COND_KEYS = ("type", "child", "parent", "value")
_FIELD_NAMES = {"low": "lower", "high": "upper", "step": "q"}


@contextmanager
def _fs_under(key: str) -> Iterator[None]:
    """Like ``under``, with fedhpo field names turned into FederatedScope's."""
    try:
        yield
    except SearchSpaceError as exc:
        field = _FIELD_NAMES.get(exc.key or "", exc.key)
        raise SearchSpaceError(exc.message, key=f"{key}.{field}" if field else key) from None


def _is_field(key: str) -> bool:
    try:
        field_info(key)
    except ConfigError:
        return False
    return True


def _line(doc: YamlDoc, key: Any) -> str:
    line = doc.lines.get(str(key))
    return f"line {line}" if line is not None else "no line"


def _resolve(doc: YamlDoc, keys: list[Any]) -> dict[Any, str]:
    """FederatedScope key -> fedhpo path; every key without one is listed in one error."""
    out: dict[Any, str] = {}
    bad: list[Any] = []
    for key in keys:
        target = FS_ALIASES.get(key) if key in FS_ALIASES else None
        if target is None and key not in FS_ALIASES and isinstance(key, str) and _is_field(key):
            target = key
        if target is None:
            bad.append(key)
            continue
        twin = next((k for k, v in out.items() if v == target), None)
        if twin is not None:
            raise err(str(key), f"`{key}` and `{twin}` both set `{target}`; keep one of them")
        out[key] = target
    if bad:
        listed = ", ".join(f"`{k}` ({_line(doc, k)}: {why_unsupported(str(k))})" for k in bad)
        supported = ", ".join(k for k, v in FS_ALIASES.items() if v is not None)
        hint = ""
        if any(not isinstance(k, str) or "." not in k for k in bad):
            hint = f" (a fedhpo search-space file has top-level keys {', '.join(TOP_KEYS)})"
        raise err(
            str(bad[0]),
            f"{len(bad)} key(s) have no fedhpo equivalent: {listed}. Remove them or use run-config "
            f"paths such as client.lr{hint}. Supported FederatedScope keys: {supported}",
        )
    return out


def _param(name: str, key: str, spec: Any) -> Param:
    if isinstance(spec, list):
        with _fs_under(key):
            return CategoricalParam(name, tuple(spec))
    spec = mapping(spec, key, "{type: float, lower: 0.01, upper: 1.0, log: true}")
    known(spec, _PARAM_KEYS, key)
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in ("float", "int", "cate"):
        raise err(f"{key}.type", f"type must be float, int or cate, got {kind!r}")
    for required in ("choices",) if kind == "cate" else ("lower", "upper"):
        if required not in spec:
            raise err(key, f"a {kind} hyperparameter needs `{required}`; add it")
    with _fs_under(key):
        if kind == "cate":
            return CategoricalParam(name, spec["choices"])
        if kind == "float":
            log, step = spec.get("log", False), spec.get("q")
            return FloatParam(name, spec["lower"], spec["upper"], log, step)
        step = 1 if spec.get("q") is None else spec["q"]
        return IntParam(name, spec["lower"], spec["upper"], spec.get("log", False), step)


def _ref(value: Any, key: str, names: Mapping[Any, str]) -> str:
    if not isinstance(value, str):
        raise err(key, f"must name a hyperparameter of this file, got {value!r}")
    if value in names:
        return names[value]
    if value in names.values():
        return str(value)
    raise err(
        key,
        f"{value!r} is not a hyperparameter of this file; conditions may refer to: "
        + ", ".join(str(k) for k in names),
    )


def _condition(spec: Any, key: str, names: Mapping[Any, str]) -> tuple[str, AnyCondition]:
    """(child param, condition) of one FederatedScope condition entry."""
    spec = mapping(spec, key, "{type: equal, child: fedprox.mu, parent: ..., value: ...}")
    known(spec, _COND_KEYS, key)
    kind = spec.get("type")
    if kind in ("and", "or"):
        first = _condition(spec.get("child"), f"{key}.child", names)
        second = _condition(spec.get("parent"), f"{key}.parent", names)
        if first[0] != second[0]:
            raise err(
                key,
                f"`{kind}` must join two conditions on the same child, got {first[0]} and "
                f"{second[0]}",
            )
        node = And if kind == "and" else Or
        return first[0], node((first[1], second[1]))
    if not isinstance(kind, str) or kind not in OPS:
        raise err(
            f"{key}.type",
            f"unknown condition type {kind!r}; use one of: {', '.join(OPS)}, and, or",
        )
    for required in _COND_KEYS[1:]:
        if required not in spec:
            raise err(key, f"a condition needs `{required}`; add it")
    child = _ref(spec["child"], f"{key}.child", names)
    parent = _ref(spec["parent"], f"{key}.parent", names)
    with under(f"{key}.value"):
        return child, Condition(parent, kind, spec["value"])


def _translate(exc: SearchSpaceError, keys: Mapping[str, str], when: Mapping[str, str]) -> Any:
    """Turn a SearchSpace key (``params.client.lr.low``) into the file's key."""
    key = exc.key or ""
    for name in sorted(keys, key=len, reverse=True):
        prefix = f"params.{name}"
        if key == prefix or key.startswith(prefix + "."):
            field = key[len(prefix) + 1 :].split(".")[0]
            if field == "when":
                new = when.get(name, keys[name])
            else:
                new = keys[name] + (f".{_FIELD_NAMES.get(field, field)}" if field else "")
            message = exc.message.replace("type: categorical", "type: cate")
            return SearchSpaceError(message, key=new)
    return exc


def parse_fs(doc: YamlDoc, base: RunConfig, base_path: Path | None) -> SearchSpace:
    """Build a space from a FederatedScope-format mapping (format 'federatedscope' or 'grid')."""
    data: Mapping[Any, Any] = doc.data
    cond_keys = [k for k in data if isinstance(k, str) and k.startswith("condition")]
    param_keys = [k for k in data if k not in cond_keys]
    if not param_keys:
        raise err("", "no hyperparameters; add e.g. train.optimizer.lr: {type: float, ...}")
    names = _resolve(doc, param_keys)
    params = {names[k]: _param(names[k], str(k), data[k]) for k in param_keys}
    conditions: dict[str, list[AnyCondition]] = {}
    where: dict[str, str] = {}
    for key in cond_keys:
        child, cond = _condition(data[key], key, names)
        conditions.setdefault(child, []).append(cond)
        where.setdefault(child, key)
    for child, conds in conditions.items():
        params[child] = dataclasses.replace(params[child], condition=all_of(conds))
    grid = all(isinstance(data[k], list) for k in param_keys)
    renamed = tuple((str(k), v) for k, v in names.items() if k != v)
    try:
        return SearchSpace(
            params=tuple(params.values()),
            tuner=TunerSpec(sampler="grid") if grid else TunerSpec(),
            base=base,
            base_path=base_path,
            source=doc.source,
            format="grid" if grid else "federatedscope",
            renamed=renamed,
        )
    except SearchSpaceError as exc:
        raise _translate(exc, {v: str(k) for k, v in names.items()}, where) from None
