"""Fuzzing the run-config and search-space parsers (fedhpo, FederatedScope and grid formats):
any YAML document, any text or bytes, and random mutations of the shipped files give a valid
object or a clean FedhpoError (one line), never another exception.

The suite runs a short campaign; ``FEDHPO_FUZZ_EXAMPLES=10000 pytest tests/test_fuzz.py`` runs
a long one (examples per test).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedhpo.config import RunConfig, load_config
from fedhpo.errors import FedhpoError
from fedhpo.space import FS_ALIASES, METRICS, OPS, PRUNERS, SAMPLERS, SearchSpace, load_space
from fedhpo.tune import check_runnable

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
SPACES = sorted((REPO / "searchspaces").glob("*.yaml"))
FIXTURES = sorted((REPO / "tests" / "space" / "fixtures").glob("*.yaml"))
SHIPPED = {p: p.read_text(encoding="utf-8") for p in CONFIGS + SPACES + FIXTURES}

EXAMPLES = int(os.environ.get("FEDHPO_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI stays deterministic
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ----------------------------------------------------------------------------- the targets

# A copy of the repository's configs/ and searchspaces/ layout, so that a mutated space file's
# relative `base: ../configs/x.yaml` still resolves.
WORK = Path(tempfile.mkdtemp(prefix="fedhpo-fuzz-"))
atexit.register(shutil.rmtree, WORK, True)
for _folder in ("configs", "searchspaces", "fixtures"):
    (WORK / _folder).mkdir()
for _path in CONFIGS:
    shutil.copy(_path, WORK / "configs" / _path.name)


def _write(content: str | bytes, folder: str = "searchspaces") -> Path:
    path = WORK / folder / "fuzzed.yaml"
    data = content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass")
    path.write_bytes(data)
    return path


def _clean(load: Callable[[Path], Any], path: Path) -> Any:
    """``load(path)``, or None after a FedhpoError that is one line with a message."""
    try:
        return load(path)
    except FedhpoError as exc:
        text = str(exc)
        assert exc.message and text and "\n" not in text, repr(text)
        return None


def _space(path: Path) -> SearchSpace:
    space = load_space(path)
    check_runnable(space)  # what `fedhpo space check` does after loading
    return space


def check_config(content: str | bytes) -> None:
    config = _clean(load_config, _write(content, "configs"))
    assert config is None or isinstance(config, RunConfig)


def check_space(content: str | bytes) -> None:
    space = _clean(_space, _write(content))
    assert space is None or isinstance(space, SearchSpace)


TARGETS = {"config": check_config, "space": check_space}

# ----------------------------------------------------------------------------- vocabulary


def _config_words() -> list[str]:
    words: set[str] = set()
    todo: list[Any] = [RunConfig]
    while todo:
        for f in dataclasses.fields(todo.pop()):
            words.add(f.name)
            default = f.default_factory() if callable(f.default_factory) else f.default
            if dataclasses.is_dataclass(default):
                todo.append(type(default))
    return sorted(words)


WORDS = _config_words() + [
    "base", "objective", "fidelity", "tuner", "params", "type", "low", "high", "log", "step",
    "choices", "when", "any", "all", "lower", "upper", "q", "default_value", "child", "parent",
    "value", "metric", "direction", "data_fraction", "float", "int", "categorical", "cate",
    "and", "or", "condition", "condition1", "maximize", "minimize", "client.lr", "client.mu",
    "server.optimizer", "federation.rounds", "data.partition.method", "model.options.hidden",
    "sgd", "adam", "yogi", "adagrad", "synthetic", "csv", "idx", "mlp", "logreg", "cnn", "iid",
    "dirichlet", "../configs/default.yaml", "../configs/fmnist_cnn.yaml", "default.yaml",
    *OPS, *METRICS, *SAMPLERS, *PRUNERS, *FS_ALIASES,
]  # fmt: skip
TOKENS = [
    ":", ": ", " ", "\n", "\n  ", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "*b", "&a [*a]",
    "!!python/object:os.system ", "!!python/name:os.system", "!!binary ", "!!float ", "!!int ",
    "!!set ", "!!omap ", "!!timestamp ", "!custom ", "? ", "|", ">", "#", "'", '"', "\t", "\x00",
    "\ufeff", "\x85", "\u2028", "\ud800", "~", "null", "nan", ".nan", ".inf", "-.inf", "1e999",
    "-1", "0", "1.5", "true", "2024-13-01", "2001-12-14t21:59:43.10-05:00", "<<: *a", "<<: {}",
    "%YAML 1.1\n", "---\n", "...\n", "\\", "0x1F", "0o17", "1_000", "+12", "=", "@", "`",
    "[" * 100, "]" * 100, "{a: " * 70,
]  # fmt: skip

keys = st.one_of(st.sampled_from(WORDS), st.text(max_size=6), st.integers(-3, 3), st.none())
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 300),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1e-3, 0.1, 0.5, 0.9, 1.0, 2.0, 1e300, -1.0]),
    st.sampled_from(WORDS),
    st.text(max_size=8),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=25,
)


@st.composite
def yaml_text(draw: st.DrawFn) -> str:
    """A YAML document dumped from a random nested structure, in flow or block style."""
    data = draw(st.one_of(documents, st.dictionaries(keys, documents, max_size=6)))
    try:
        return yaml.safe_dump(data, default_flow_style=draw(st.booleans()), allow_unicode=True)
    except (yaml.YAMLError, UnicodeEncodeError):
        return ""


random_text = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(TOKENS + WORDS), max_size=40).map("".join),
)

# ----------------------------------------------------------------------------- mutations


def _data_mutation(draw: st.DrawFn, text: str) -> str:
    """Parse, change one random place (replace, delete, add or rename a key), dump again."""
    data = yaml.safe_load(text)
    node = data
    while True:
        items = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        if not items:
            break
        key, child = draw(st.sampled_from(items))
        if isinstance(child, (dict, list)) and child and draw(st.booleans()):
            node = child
            continue
        action = draw(st.sampled_from(["replace", "delete", "add", "rename"]))
        if action == "replace":
            node[key] = draw(documents)
        elif action == "delete":
            del node[key]
        elif isinstance(node, dict):
            new_key = draw(keys)
            node[new_key] = node.pop(key) if action == "rename" else draw(documents)
        else:
            node.append(draw(documents))
        break
    try:
        return yaml.safe_dump(data, default_flow_style=draw(st.booleans()), allow_unicode=True)
    except yaml.YAMLError:
        return text


def _text_mutation(draw: st.DrawFn, text: str) -> str:
    lines = text.splitlines(keepends=True) or [""]
    kind = draw(st.sampled_from(["insert", "delete", "replace", "line", "indent"]))
    i = draw(st.integers(0, len(text)))
    j = draw(st.integers(i, min(len(text), i + 30)))
    token = draw(st.one_of(st.sampled_from(TOKENS + WORDS), st.text(max_size=5)))
    if kind == "insert":
        return text[:i] + token + text[i:]
    if kind == "delete":
        return text[:i] + text[j:]
    if kind == "replace":
        return text[:i] + token + text[j:]
    n = draw(st.integers(0, len(lines) - 1))
    if kind == "line":
        m = draw(st.integers(0, len(lines) - 1))
        lines[n], lines[m] = lines[m], lines[n]
        if draw(st.booleans()):
            lines.insert(n, lines[m])
    else:
        lines[n] = (" " * draw(st.integers(0, 4))) + lines[n].lstrip(" ")
    return "".join(lines)


@st.composite
def mutated(draw: st.DrawFn, files: list[Path]) -> str | bytes:
    """A shipped file after one to four random mutations (of its text or of its data)."""
    text = SHIPPED[draw(st.sampled_from(files))]
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.integers(0, 3)) == 0:
            # PyYAML itself may fail on the text mutated so far (even with a ValueError for a
            # bad date): then only the text is mutated further.
            with contextlib.suppress(Exception):
                text = _data_mutation(draw, text)
        else:
            text = _text_mutation(draw, text)
    if draw(st.integers(0, 9)) == 0:  # now and then, raw bytes: not UTF-8, UTF-16, NUL ...
        data = bytearray(text.encode("utf-8", "surrogatepass"))
        pos = draw(st.integers(0, len(data)))
        data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        return bytes(data)
    return text


# ----------------------------------------------------------------------------- the campaign


def test_the_shipped_files_are_valid() -> None:
    for path in CONFIGS:
        assert isinstance(load_config(path), RunConfig)
    for path in SPACES + FIXTURES:
        if path.name != "fs_dropout.yaml":  # it names keys fedhpo does not have, on purpose
            assert isinstance(load_space(path), SearchSpace), path


@pytest.mark.parametrize("target", list(TARGETS))
@FUZZ
@given(text=yaml_text())
def test_any_yaml_document(target: str, text: str) -> None:
    TARGETS[target](text)


@pytest.mark.parametrize("target", list(TARGETS))
@FUZZ
@given(content=st.one_of(random_text, st.binary(max_size=200)))
def test_any_text_or_bytes(target: str, content: str | bytes) -> None:
    TARGETS[target](content)


@FUZZ
@given(content=mutated(CONFIGS))
def test_mutated_shipped_configs(content: str | bytes) -> None:
    check_config(content)


@FUZZ
@given(content=mutated(SPACES + FIXTURES))
def test_mutated_shipped_spaces(content: str | bytes) -> None:
    check_space(content)


@FUZZ
@given(
    path=st.sampled_from(CONFIGS),
    overrides=st.lists(
        st.tuples(st.sampled_from(WORDS + ["client.lr", "data.options.alpha"]), random_text).map(
            "=".join
        ),
        max_size=3,
    ),
)
def test_mutated_set_overrides(path: Path, overrides: list[str]) -> None:
    try:
        assert isinstance(load_config(path, overrides), RunConfig)
    except FedhpoError as exc:
        assert exc.message and "\n" not in str(exc)
