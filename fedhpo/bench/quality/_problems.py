"""The tuning-quality problems: a search space, its ground-truth grid and the seeds to use."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedhpo.space import SearchSpace, load_space

#: Where the shipped spaces live (the repository's ``searchspaces/``), for the defaults.
SPACES = Path(__file__).resolve().parents[3] / "searchspaces"


@dataclass(frozen=True)
class Problem:
    """A space with ground truth: every point of ``grid`` run at full fidelity.

    ``search_seeds`` are the training seeds strategies may see (trials run the base config's
    seed, promotion adds the next ones); the ground truth is the mean over ``truth_seeds``,
    which no strategy sees, so a lucky seed cannot pass for a good config. Eight of them: with
    two, w_server's best point and the order of strategies changed with the pair chosen; with
    four, the two disjoint sets (2-5, 6-9) ranked w_client's 20 best points unalike
    (Spearman 0.24) and gave the default 46 or 53 wins of 64 (docs/tuning-quality.md).
    """

    name: str
    space_file: str
    grid: Mapping[str, Sequence[Any]]
    """Values per parameter; points are their product, minus inactive conditional params."""
    search_seeds: tuple[int, ...] = (0, 1)
    truth_seeds: tuple[int, ...] = tuple(range(2, 10))
    budget: float = 10.0
    """B: compute per strategy in full-run equivalents (client local steps of one full run
    of the base config)."""
    description: str = field(default="", compare=False)

    def space(self) -> SearchSpace:
        """The problem's search space (loaded afresh)."""
        return load_space(self.space_file)

    @property
    def seeds(self) -> tuple[int, ...]:
        """Every seed the ground-truth table holds."""
        return tuple(sorted(set(self.search_seeds) | set(self.truth_seeds)))

    def with_truth_seeds(self, seeds: Sequence[int]) -> Problem:
        """The same problem scored on other ground-truth seeds (ValueError if fewer than two,
        or if a strategy could see one of them)."""
        chosen = tuple(sorted(set(seeds)))
        if len(chosen) < 2:
            raise ValueError(f"ground truth needs at least 2 seeds, got {list(seeds)}")
        seen = sorted(set(chosen) & set(self.search_seeds))
        if seen:
            raise ValueError(
                f"seed {seen[0]} is a search seed of {self.name} (strategies see "
                f"{list(self.search_seeds)}); pick truth seeds no strategy runs"
            )
        return dataclasses.replace(self, truth_seeds=chosen)

    def with_budget(self, budget: float) -> Problem:
        """The same problem at another budget B (ValueError unless B is a number > 0)."""
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
            raise ValueError(f"the budget must be a number of full runs > 0, got {budget!r}")
        if not math.isfinite(budget):
            raise ValueError(f"the budget must be finite, got {budget!r}")
        return dataclasses.replace(self, budget=float(budget))

    def points(self) -> list[dict[str, Any]]:
        """The grid's points in a fixed order, each with only its active parameters."""
        space = self.space()
        missing = [p.name for p in space.params if p.name not in self.grid]
        if missing or set(self.grid) - set(space.names):
            raise ValueError(f"problem {self.name}: the grid must give exactly {space.names}")
        seen: dict[str, dict[str, Any]] = {}
        for combo in itertools.product(*(self.grid[n] for n in space.names)):
            point: dict[str, Any] = {}
            for param, value in zip(space.params, combo, strict=True):
                if param.condition is None or param.condition.holds(point):
                    point[param.name] = value
            seen.setdefault(point_key(point), point)
        return list(seen.values())


def point_key(point: Mapping[str, Any]) -> str:
    """A canonical text key of a grid point."""
    return json.dumps({k: point[k] for k in sorted(point)}, default=str)


def _log_grid(low: float, high: float, count: int) -> list[float]:
    ratio = (high / low) ** (1 / (count - 1))
    return [float(f"{low * ratio**i:.4g}") for i in range(count)]


PROBLEMS: dict[str, Problem] = {
    p.name: p
    for p in (
        Problem(
            name="lr_mu",
            space_file=str(SPACES / "lr_mu.yaml"),
            grid={
                "client.lr": _log_grid(1e-3, 1.0, 13),
                "client.mu": [0.0, 0.25, 0.5, 0.75, 1.0],
            },
            description="the demo: FedProx Synthetic(1,1), logreg, 200 rounds; lr x mu",
        ),
        Problem(
            name="w_client",
            space_file=str(SPACES / "w_client.yaml"),
            grid={
                "client.lr": [0.02, 0.03, 0.05, 0.07, 0.1, 0.14, 0.2, 0.3, 0.5],
                "client.local_epochs": [1, 2, 3, 4],
                "client.batch_size": [16, 32, 64],
                "server.momentum": [0.0, 0.9],
            },
            description="workload W: client lr, local epochs, batch size, server momentum",
        ),
        Problem(
            name="w_server",
            space_file=str(SPACES / "w_server.yaml"),
            grid={
                "server.optimizer": ["sgd", "adam", "yogi"],
                "server.lr": [
                    *(0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.03, 0.05),
                    *(0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0),
                ],
                "server.momentum": [0.0, 0.5, 0.9],
                "server.beta1": [0.0, 0.5, 0.9],
            },
            description="workload W: server optimizer (conditional momentum / beta1) and lr",
        ),
    )
}
