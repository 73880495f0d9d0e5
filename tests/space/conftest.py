"""Shared helpers for search-space tests: write a space file and load it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from fedhpo.space import SearchSpace, load_space

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def write_space(tmp_path: Path) -> Callable[[str], Path]:
    """Write dedented YAML text to ``tmp_path/space.yaml`` and return the path."""

    def write(text: str, name: str = "space.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture
def space_of(write_space: Callable[[str], Path]) -> Callable[[str], SearchSpace]:
    """Load a space from YAML text."""
    return lambda text: load_space(write_space(text))
