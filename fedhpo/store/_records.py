"""The names and shapes of what fedhpo keeps on Optuna trials and studies (user attributes)."""

from __future__ import annotations

import math
from typing import Any

import optuna

# Trial user attributes.
CONFIG = "config"  # fully resolved run config at the trial's fidelity (dict)
FIDELITY = "fidelity"  # the fidelity used (dict)
CURVES = "curves"  # per-round curves: {"round": [...], "val_accuracy": [...], ...}
WALL_SECONDS = "wall_seconds"
BYTES_SENT = "bytes_sent"
STATUS_REASON = "status_reason"  # why it ended: completed / pruned at round r / diverged / error
FINAL_METRICS = "final_metrics"  # {metric: value} at the end of the trial's run
CLIENT_ACCURACIES = "client_accuracies"
ORIGIN = "origin"  # "base config" on the trial that runs the base config's own values
WORKER = "worker"  # {"host": ..., "pid": ...} of the process that runs (ran) the trial

# Study user attributes.
VERSION = "fedhpo_version"
SPACE = "space"  # the parsed search space (dict)
SPACE_FILE = "space_file"
SPACE_TEXT = "space_text"
BASE_CONFIG = "base_config"  # the full-fidelity base run config (dict)
OBJECTIVES = "objectives"  # [{"metric": ..., "direction": ...}]
PROMOTIONS = "promotions"  # {"<trial number>": {"seeds": [...], "values": [...], ...}}
BUDGET = "budget"  # {"trials": total, "timeout": seconds, "started": epoch seconds} of all workers

CURVE_KEYS = ("train_loss", "val_loss", "val_accuracy")


def clean(value: Any) -> Any:
    """JSON-safe value for a user attribute (nan and inf become None)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def objectives(study: optuna.Study) -> list[dict[str, str]]:
    """The study's objectives as recorded by fedhpo (or generic names for foreign studies)."""
    recorded = study.user_attrs.get(OBJECTIVES)
    if recorded:
        return list(recorded)
    return [
        {"metric": f"value_{i}", "direction": d.name.lower()}
        for i, d in enumerate(study.directions)
    ]


def promotions(study: optuna.Study) -> dict[int, dict[str, Any]]:
    """Full-fidelity re-runs of the top trials, keyed by trial number."""
    return {int(k): v for k, v in (study.user_attrs.get(PROMOTIONS) or {}).items()}
