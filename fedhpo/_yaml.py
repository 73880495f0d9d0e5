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


#: Deeper nesting than this is refused (PyYAML composes recursively; no config needs more).
MAX_DEPTH = 64
#: Values after expanding aliases: bounds "billion laughs" documents.
MAX_VALUES = 200_000


class _Loader(yaml.SafeLoader):
    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested more than {MAX_DEPTH} levels deep; flatten the file",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


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
_MERGE = "tag:yaml.org,2002:merge"
_VALUE = "tag:yaml.org,2002:value"


class _Walk:
    """Turns a node graph into plain data, recording each key's line; refuses cycles."""

    def __init__(self, loader: _Loader) -> None:
        self.loader = loader
        self.lines: dict[str, int] = {}
        self.path: set[int] = set()  # ids of the collection nodes being walked
        self.count = 0

    def value(self, node: yaml.Node, prefix: str, at: yaml.Node | None = None) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise _error(node, f"more than {MAX_VALUES} values after expanding aliases (*name)")
        if not isinstance(node, yaml.CollectionNode) or node.tag not in _PLAIN_TAGS:
            return self.construct(node)  # a custom tag on a collection: SafeLoader refuses it
        if id(node) in self.path:
            raise _error(
                at or node,
                "recursive alias: an anchor (&name) is used inside itself; "
                "copy the values instead of the *alias",
            )
        self.path.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, prefix)
            return [self.value(v, f"{prefix}[{i}]") for i, v in enumerate(node.value)]
        finally:
            self.path.discard(id(node))

    def mapping(self, node: yaml.MappingNode, prefix: str) -> dict[Any, Any]:
        """The mapping's keys, after those its merge key (``<<: *anchor``) brings, which its
        own keys override wherever they stand; two own keys alike are a duplicate."""
        merges = [(k, v) for k, v in node.value if k.tag == _MERGE]
        if len(merges) > 1:
            raise _error(merges[1][0], "duplicate key '<<'; merge several with <<: [*a, *b]")
        out = self.merged(*merges[0], prefix) if merges else {}
        own: set[Any] = set()
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            if isinstance(key_node, yaml.CollectionNode):
                raise _error(key_node, "a key must be plain text or a number, not a collection")
            # `=` is a plain key, as PyYAML's loaders read it (`flatten_mapping`)
            key = "=" if key_node.tag == _VALUE else self.construct(key_node)
            path = f"{prefix}.{key}" if prefix else str(key)
            if key in own:
                raise FedhpoError(
                    f"duplicate key {key!r}; remove one of them",
                    key=path,
                    line=key_node.start_mark.line + 1,
                )
            own.add(key)
            self.lines[path] = key_node.start_mark.line + 1
            out[key] = self.value(value_node, path, key_node)
        return out

    def merged(self, key_node: yaml.Node, value_node: yaml.Node, prefix: str) -> dict[Any, Any]:
        """What ``<<`` (``key_node``) merges: a mapping, or a list of them of which the
        earlier wins (YAML's merge key, as PyYAML's safe loader reads it). Each merged key
        has the line of the ``<<``: the mapping has the key because of that line."""
        many = isinstance(value_node, yaml.SequenceNode) and value_node.tag in _PLAIN_TAGS
        sources = value_node.value if many else [value_node]
        out: dict[Any, Any] = {}
        for source in reversed(sources):
            if not isinstance(source, yaml.MappingNode) or source.tag not in _PLAIN_TAGS:
                raise _error(
                    source,
                    "`<<` merges a mapping or a list of mappings, e.g. <<: *defaults or "
                    "<<: [*a, *b]; quote it for a key named <<",
                )
            out.update(self.value(source, prefix, key_node))
        for key in out:
            self.lines[f"{prefix}.{key}" if prefix else str(key)] = key_node.start_mark.line + 1
        return out

    def construct(self, node: yaml.Node) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, RecursionError):
            raise
        except Exception as exc:  # e.g. a date like 2024-13-01, or `!!float abc`
            what = repr(node.value) if isinstance(node, yaml.ScalarNode) else node.tag
            raise _error(node, f"cannot read the value {what} ({exc})") from None


def _error(node: yaml.Node, problem: str) -> yaml.MarkedYAMLError:
    return yaml.constructor.ConstructorError(None, None, problem, node.start_mark)


def _read(text: str) -> tuple[Any, dict[str, int]]:
    """(data or None for an empty document, key lines); raises YAMLError or FedhpoError."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        walk = _Walk(loader)
        return (None if node is None else walk.value(node, "")), walk.lines
    finally:
        loader.dispose()


def parse_yaml(text: str, source: str, error: type[FedhpoError] = FedhpoError) -> YamlDoc:
    """Parse YAML text (safe loading only) into a :class:`YamlDoc`; errors name file and line."""
    try:
        data, lines = _read(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "cannot parse"
        raise error(
            f"malformed YAML: {' '.join(problem.split())}", source=source, line=line
        ) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise error(
            f"character U+{exc.character:04X} is not allowed in YAML; remove it",
            source=source,
            line=line,
        ) from None
    except yaml.YAMLError as exc:
        raise error(f"malformed YAML: {' '.join(str(exc).split())}", source=source) from None
    except FedhpoError as exc:
        raise error(exc.message, key=exc.key, source=source, line=exc.line) from None
    return YamlDoc({} if data is None else data, lines, source)


def load_yaml(path: str | Path, error: type[FedhpoError] = FedhpoError) -> YamlDoc:
    """Read a YAML file; a missing file or bad YAML raises ``error`` naming the file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise error("file not found; check the path", source=str(path)) from None
    except OSError as exc:
        raise error(f"cannot read file: {exc.strerror}", source=str(path)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise error(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {column}); "
            "save the file as UTF-8",
            source=str(path),
            line=line,
        ) from None
    return parse_yaml(text, str(path), error)


def scalar(text: str) -> Any:
    """Parse one ``--set`` value the way the YAML file would (``1e-3`` is a float)."""
    try:
        return _read(text)[0]
    except (yaml.YAMLError, FedhpoError):
        return text
