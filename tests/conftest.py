"""Fixtures shared across the suite: tiny search spaces over tiny generated federations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from fedhpo.sim.threads import set_threads
from tests.helpers import BASE

# Small models on CPU: one thread is several times faster than many (DEVELOPERS.md).
set_threads(1)

# Property tests draw the same examples on every run (no example database): CI is
# deterministic. HYPOTHESIS_PROFILE=explore draws fresh random examples instead.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


@pytest.fixture
def make_space(tmp_path: Path):
    """Write a base config and a space file with the given params/tuner/objective YAML."""

    def make(
        params: str,
        tuner: str = "{sampler: random, pruner: none, trials: 4, seed: 0, promote: 0}",
        objective: str = "{metric: val_accuracy, direction: maximize}",
        fidelity: str = "{rounds: 6}",
        name: str = "space",
    ) -> Path:
        (tmp_path / "base.yaml").write_text(BASE)
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            f"base: base.yaml\nobjective: {objective}\nfidelity: {fidelity}\n"
            f"tuner: {tuner}\nparams:\n{params}"
        )
        return path

    return make


@pytest.fixture
def storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"
