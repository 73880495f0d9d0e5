"""Safe YAML loading that keeps the line of every key, for errors that point into the file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from fedhpo.errors import FedhpoError

# PyYAML follows YAML 1.1, where `1e-3` is a string; YAML 1.2 (and every user) reads a float.
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _Loader(yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:float"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


class YamlDoc:
    """A parsed YAML mapping plus the 1-based line of each dotted key path."""

    def __init__(self, data: Any, lines: dict[str, int], source: str) -> None:
        self.data = data
        self.lines = lines
        self.source = source

    def line_of(self, key: str | None) -> int | None:
        """The line of ``key`` or of its nearest parent that has one."""
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key.rpartition(".")[0]
        return None


_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


def _walk(node: yaml.Node, loader: _Loader, prefix: str, lines: dict[str, int]) -> Any:
    if isinstance(node, yaml.CollectionNode) and node.tag not in _PLAIN_TAGS:
        return loader.construct_object(node, deep=True)  # a custom tag: SafeLoader refuses it
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            path = f"{prefix}.{key}" if prefix else str(key)
            if key in out:
                raise FedhpoError(
                    f"duplicate key {key!r}; remove one of them",
                    key=path,
                    line=key_node.start_mark.line + 1,
                )
            lines[path] = key_node.start_mark.line + 1
            out[key] = _walk(value_node, loader, path, lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(v, loader, f"{prefix}[{i}]", lines) for i, v in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, source: str, error: type[FedhpoError] = FedhpoError) -> YamlDoc:
    """Parse YAML text (safe loading only) into a :class:`YamlDoc`; errors name file and line."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        lines: dict[str, int] = {}
        data = {} if node is None else _walk(node, loader, "", lines)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "cannot parse"
        raise error(f"malformed YAML: {problem}", source=source, line=line) from None
    except yaml.YAMLError as exc:
        raise error(f"malformed YAML: {exc}", source=source) from None
    except FedhpoError as exc:
        raise error(exc.message, key=exc.key, source=source, line=exc.line) from None
    finally:
        loader.dispose()
    return YamlDoc(data, lines, source)


def load_yaml(path: str | Path, error: type[FedhpoError] = FedhpoError) -> YamlDoc:
    """Read a YAML file; a missing file or bad YAML raises ``error`` naming the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error("file not found; check the path", source=str(path)) from None
    except OSError as exc:
        raise error(f"cannot read file: {exc.strerror}", source=str(path)) from None
    return parse_yaml(text, str(path), error)


def scalar(text: str) -> Any:
    """Parse one ``--set`` value the way the YAML file would (``1e-3`` is a float)."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError:
        return text
