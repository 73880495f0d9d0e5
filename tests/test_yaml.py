"""Safe YAML loading: tags, aliases, nesting and odd values give a FedhpoError with a line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fedhpo._yaml import MAX_DEPTH, load_yaml, parse_yaml, scalar
from fedhpo.errors import ConfigError, FedhpoError


@pytest.mark.parametrize(
    ("text", "fragment", "line"),
    [
        ("a: !!python/object:os.system {}\n", "python/object", 1),
        ("a: !!python/object/new:subprocess.Popen [['true']]\n", "python/object/new", 1),
        ("a: 1\nb: 2024-13-01\n", "cannot read the value '2024-13-01'", 2),
        ("a: !!float abc\n", "cannot read the value 'abc'", 1),
        ("a: !!timestamp nope\n", "cannot read the value 'nope'", 1),
        ("? [1, 2]\n: 3\n", "a key must be plain text or a number", 1),
        ("a: &a {b: *a}\n", "recursive alias", 1),
        ("a: &a [1, [*a]]\n", "recursive alias", 1),
        ("a: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "nested more than", 1),
    ],
)
def test_refused_with_line(text: str, fragment: str, line: int) -> None:
    with pytest.raises(ConfigError) as err:
        parse_yaml(text, "c.yaml", ConfigError)
    assert fragment in str(err.value)
    assert err.value.source == "c.yaml" and err.value.line == line


def test_shared_aliases_are_fine_but_a_billion_laughs_is_refused() -> None:
    doc = parse_yaml("a: &x [1, 2]\nb: *x\nc: [*x, *x]\n", "ok.yaml")
    assert doc.data == {"a": [1, 2], "b": [1, 2], "c": [[1, 2], [1, 2]]}
    lines = ["l0: &l0 [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 9)]
    with pytest.raises(FedhpoError, match="more than 200000 values after expanding aliases"):
        parse_yaml("\n".join(lines) + "\n", "laughs.yaml")


def test_nesting_up_to_the_limit_is_read() -> None:
    depth = MAX_DEPTH - 1
    doc = parse_yaml("a: " + "[" * depth + "]" * depth, "deep.yaml")
    value = doc.data["a"]
    for _ in range(depth - 1):
        value = value[0]
    assert value == []


def test_not_utf8_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("client:\n  name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xe9 at column 12\)") as err:
        load_yaml(path, ConfigError)
    assert err.value.line == 2 and err.value.source == str(path)


@pytest.mark.parametrize(
    ("text", "value"),
    [("0.1", 0.1), ("1e-3", 1e-3), ("", None), ("[1, 2]", [1, 2]), ("2024-13-01", "2024-13-01"),
     ("!!python/name:os.system", "!!python/name:os.system"), ("&a [*a]", "&a [*a]")],
)  # fmt: skip
def test_set_values_are_read_safely(text: str, value: object) -> None:
    assert scalar(text) == value


@pytest.mark.parametrize(
    ("text", "line", "code"),
    [("a: 1\nb: x\x00y\n", 2, "U+0000"), ("\x1f", 1, "U+001F"), ("a: \ud800\n", 1, "U+D800")],
)
def test_unprintable_characters_are_one_line_with_the_line(text: str, line: int, code: str):
    with pytest.raises(ConfigError) as err:
        parse_yaml(text, "c.yaml", ConfigError)
    assert "\n" not in str(err.value) and err.value.line == line
    assert f"character {code} is not allowed in YAML" in str(err.value)


MERGES = [
    # the space file of the QA report: server.lr is client.lr with another high
    "params:\n  client.lr: &lr\n    type: float\n    low: 0.001\n    high: 1.0\n    log: true\n"
    "  server.lr:\n    <<: *lr\n    high: 3.0\n",
    # an own key wins wherever it stands; of a list of merged mappings the earlier wins
    "a: &a {x: 1, y: 2}\nb: &b {y: 3, z: 4}\nc: {x: 0, <<: [*a, *b]}\nd: {<<: [*b, *a]}\n",
    # merged mappings may merge themselves; an inline mapping merges too
    "a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc:\n  <<: *b\n  <<<: 3\nd: {<<: {k: v}}\n",
    "a: &a [1, 2]\nb: {<<: {k: *a}}\n",
    # `=` is a plain key to PyYAML (its loaders turn its tag into a string in the same step)
    "a: {=: 1, <<: {=: 2}}\n",
]


@pytest.mark.parametrize("text", MERGES)
def test_merge_keys_read_as_pyyaml_reads_them(text: str) -> None:
    # `<<: *anchor` was "malformed YAML: could not determine a constructor for the tag
    # 'tag:yaml.org,2002:merge'", though PyYAML's safe loader reads it
    assert parse_yaml(text, "m.yaml").data == yaml.safe_load(text)


def test_a_merged_key_has_the_line_of_its_merge_and_an_own_key_its_own() -> None:
    doc = parse_yaml(MERGES[0], "m.yaml")
    assert doc.lines["params.server.lr"] == 7
    assert [doc.lines[f"params.server.lr.{k}"] for k in ("type", "low", "log")] == [8, 8, 8]
    assert doc.lines["params.server.lr.high"] == 9
    assert doc.lines["params.client.lr.high"] == 5


@pytest.mark.parametrize(
    ("text", "fragment", "line"),
    [
        # two own keys are a duplicate, merged or not
        ("a: &a {x: 1}\nb:\n  <<: *a\n  y: 1\n  y: 2\n", "duplicate key 'y'", 5),
        ("a: &a {x: 1}\nb:\n  <<: *a\n  <<: *a\n", "duplicate key '<<'", 4),
        ("a: {<<: 3}\n", "`<<` merges a mapping or a list of mappings", 1),
        ("a: {<<: [{x: 1}, 2]}\n", "`<<` merges a mapping or a list of mappings", 1),
        ("a: &a\n  x: 1\n  <<: *a\n", "recursive alias", 3),
    ],
)
def test_bad_merges_are_refused_with_line(text: str, fragment: str, line: int) -> None:
    with pytest.raises(ConfigError) as err:
        parse_yaml(text, "c.yaml", ConfigError)
    assert fragment in str(err.value)
    assert err.value.source == "c.yaml" and err.value.line == line
