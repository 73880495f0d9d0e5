"""Search throughput: the lr_mu demo search for a fixed number of trials with 1 and 2 jobs."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from optuna.trial import TrialState

from fedhpo.tune import tune

DEMO_SPACE = "searchspaces/lr_mu.yaml"


@dataclass(frozen=True)
class TuneFigures:
    """One timed search: how many trials ended how, and trials per minute of wall time."""

    jobs: int
    trials: int
    seconds: float
    complete: int
    pruned: int
    failed: int
    best: float | None

    @property
    def trials_per_minute(self) -> float:
        return 60.0 * self.trials / self.seconds if self.seconds > 0 else float("nan")


def run_tune_bench(
    space: str | Path = DEMO_SPACE,
    trials: int = 20,
    jobs: Sequence[int] = (1, 2),
    log: Callable[[str], None] | None = None,
) -> list[TuneFigures]:
    """Run the same search (same seed) once per ``jobs`` value on a fresh SQLite study."""
    figures = []
    for n_jobs in jobs:
        with tempfile.TemporaryDirectory() as tmp:
            storage = f"sqlite:///{Path(tmp) / 'bench.db'}"
            start = time.perf_counter()
            study = tune(
                space,
                storage=storage,
                study="bench",
                trials=trials,
                jobs=n_jobs,
                log=lambda _: None,
            )
            seconds = time.perf_counter() - start
            states = [t.state for t in study.trials]
            best = study.best_value if TrialState.COMPLETE in states else None
            fig = TuneFigures(
                jobs=n_jobs,
                trials=len(states),
                seconds=seconds,
                complete=states.count(TrialState.COMPLETE),
                pruned=states.count(TrialState.PRUNED),
                failed=states.count(TrialState.FAIL),
                best=best,
            )
        figures.append(fig)
        if log:
            log(
                f"{n_jobs} job(s): {fig.trials} trials in {seconds:.1f} s "
                f"({fig.trials_per_minute:.1f} trials/min)"
            )
    return figures
