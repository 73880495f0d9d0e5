"""FedhpoError prints as one line, whatever user text (keys, values, paths) it quotes."""

from __future__ import annotations

from fedhpo.errors import ConfigError


def test_str_is_one_line_with_line_breaks_escaped() -> None:
    err = ConfigError("bad value 'x\ny'\u2028z", key="a\nb\x85", source="f\r.yaml", line=3)
    text = str(err)
    assert text.splitlines() == [text]
    assert text == "f\\r.yaml:3: `a\\nb\\x85`: bad value 'x\\ny'\\u2028z"


def test_plain_text_is_unchanged() -> None:
    err = ConfigError("must be > 0, got -1 (café)", key="client.lr", source="c.yaml", line=2)
    assert str(err) == "c.yaml:2: `client.lr`: must be > 0, got -1 (café)"
