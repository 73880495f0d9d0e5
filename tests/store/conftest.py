"""Fixtures of the store tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import BASE, LR_MU


@pytest.fixture
def space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A two-trial random search on a 3-round base config, in the working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(BASE.replace("rounds: 12", "rounds: 3"))
    path = tmp_path / "space.yaml"
    path.write_text(
        "base: base.yaml\ntuner: {sampler: random, pruner: none, trials: 2}\nparams:\n" + LR_MU
    )
    return path
