"""The metric vocabulary: what a run reports, what a study may optimize, and in which direction.

Defined once here (the simulator, the search-space parser and the tuner all read it), so a
metric cannot be known to one layer and unknown to another.
"""

from __future__ import annotations

#: Every metric a run reports at its end, with the direction a study optimizes it by default.
METRICS: dict[str, str] = {
    "val_accuracy": "maximize",
    "val_loss": "minimize",
    "test_accuracy": "maximize",
    "test_loss": "minimize",
    "train_loss": "minimize",
    "bytes_sent": "minimize",
    "wall_seconds": "minimize",
    "sim_seconds": "minimize",
    "time_to_accuracy": "minimize",
}
"""``sim_seconds``: simulated time of the whole run (with ``federation.time_budget`` the
accuracies are those at that budget); ``time_to_accuracy``: simulated time to
``federation.target_accuracy`` in validation accuracy (a run that does not get there has
none: its trial is pruned)."""

#: Metrics a run also reports per round, so they can drive pruning (test ones only on the
#: rounds the test set is scored).
ROUND_METRICS = ("val_accuracy", "val_loss", "train_loss", "test_accuracy", "test_loss")

#: Metrics that need the test set scored during the run (not just once at the end).
TEST_METRICS = ("test_accuracy", "test_loss")

__all__ = ["METRICS", "ROUND_METRICS", "TEST_METRICS"]
