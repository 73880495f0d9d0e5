"""Loading a search-space file: detect its format, resolve the base config, locate errors."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedhpo._yaml import YamlDoc, load_yaml
from fedhpo.config import RunConfig, load_config
from fedhpo.errors import ConfigError, SearchSpaceError
from fedhpo.space._fs import parse_fs
from fedhpo.space._parse import TOP_KEYS, parse_fedhpo
from fedhpo.space._space import SearchSpace

BaseArg = str | Path | RunConfig | None


def detect_format(data: Mapping[Any, Any]) -> str:
    """``fedhpo`` if any fedhpo top-level key is present, ``grid`` if every value is a list
    (FedEx), else ``federatedscope``."""
    if not data or any(k in TOP_KEYS for k in data):
        return "fedhpo"
    if all(isinstance(v, list) for v in data.values()):
        return "grid"
    return "federatedscope"


def _base(spec: Any, base_dir: Path | None, override: BaseArg) -> tuple[RunConfig, Path | None]:
    if isinstance(override, RunConfig):
        return override, None
    given = override if override is not None else spec
    if given is None:
        return RunConfig(), None
    if not isinstance(given, (str, Path)) or not str(given) or "\x00" in str(given):
        raise SearchSpaceError(
            f"must be the path of a run-config YAML file, got {given!r}", key="base"
        )
    path = Path(given)
    if override is None and base_dir is not None and not path.is_absolute():
        path = Path(os.path.normpath(base_dir / path))
    try:
        return load_config(path), path
    except ConfigError as exc:
        if override is not None:  # the flag's path, not the file's `base:`
            raise SearchSpaceError(
                f"cannot load the base run config: {exc}; fix that file or give another --base",
                source="--base",
            ) from None
        raise SearchSpaceError(
            f"cannot load the base run config: {exc}; fix that file or point `base` elsewhere",
            key="base",
        ) from None


_OLD_NAMES = {"fidelity.report_every": "fidelity.eval_every"}
"""Keys an error may name that a file can spell by an old name."""


def _line(doc: YamlDoc, key: str | None) -> int | None:
    if key in _OLD_NAMES and key not in doc.lines:
        key = _OLD_NAMES[key]
    line = doc.line_of(key)
    if line is None and key:
        line = doc.line_of(re.sub(r"\[\d+\]", "", key))
    return line


def parse_space(
    data: YamlDoc | Mapping[Any, Any],
    *,
    source: str | None = None,
    base_dir: str | Path | None = None,
    base: BaseArg = None,
) -> SearchSpace:
    """Build a :class:`SearchSpace` from parsed YAML (a YamlDoc keeps lines for errors).

    ``base_dir`` resolves a relative ``base:`` in the file (default: the working directory);
    ``base`` (a path or a RunConfig) replaces the file's base config, e.g. from ``--base``.
    Raises :class:`~fedhpo.errors.SearchSpaceError` naming the file, line and key.
    """
    doc = data if isinstance(data, YamlDoc) else YamlDoc(data, {}, source or "<memory>")
    try:
        if not isinstance(doc.data, Mapping):
            raise SearchSpaceError(
                "a search space must be a YAML mapping: fedhpo's keys "
                f"({', '.join(TOP_KEYS)}) or FederatedScope's `key: {{type, lower, upper}}`"
            )
        directory = None if base_dir is None else Path(base_dir)
        if detect_format(doc.data) == "fedhpo":
            config, path = _base(doc.data.get("base"), directory, base)
            return parse_fedhpo(doc.data, doc.source, config, path)
        config, path = _base(None, directory, base)
        return parse_fs(doc, config, path)
    except SearchSpaceError as exc:
        raise SearchSpaceError(
            exc.message,
            key=exc.key,
            source=exc.source or doc.source,
            line=exc.line if exc.line is not None else _line(doc, exc.key),
        ) from None


def load_space(path: str | Path, base: BaseArg = None) -> SearchSpace:
    """Read a search-space file (fedhpo, FederatedScope or FedEx-grid format).

    A relative ``base:`` in the file is relative to the file; ``base`` overrides it.
    """
    doc = load_yaml(path, SearchSpaceError)
    return parse_space(doc, base_dir=Path(path).parent, base=base)
