"""Trial records: the names and shapes of what fedhpo keeps on Optuna trials and studies.

The public contract between the layer that writes a study (``fedhpo.tune``) and the ones
that read it (``fedhpo.store``'s leaderboard and export, ``fedhpo.report``): every user
attribute fedhpo sets is named here, with the helpers that read them back.
"""

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
STEPS = "steps"  # client local SGD steps the trial's run took (its compute)
BUDGET_STOP = "budget_stop"  # {"round", "rounds", "judged"} of a trial the budget stopped
CALIBRATION = "calibration"  # True on trials enqueued to calibrate the fidelity (never pruned)

# Study user attributes.
VERSION = "fedhpo_version"
SPACE = "space"  # the parsed search space (dict)
SPACE_FILE = "space_file"
SPACE_TEXT = "space_text"
BASE_CONFIG = "base_config"  # the full-fidelity base run config (dict)
OBJECTIVES = "objectives"  # [{"metric": ..., "direction": ...}]
PROMOTIONS = "promotions"  # {"<trial number>": {"seeds", "values", "run_steps", "config", ...}}
BUDGET = "budget"  # {"trials": total, "timeout": seconds, "started": epoch seconds} of all workers
FIDELITY_CHECK = "fidelity_check"  # the calibration: rank correlation per rung, the choice
SESSIONS = "sessions"  # how many `fedhpo tune` sessions began on the study (seeds differ)
COMPUTE = "compute"  # {"trial_steps", "promotion_steps", "full_runs", ...} of the last session

CURVE_KEYS = ("train_loss", "val_loss", "val_accuracy", "sim_seconds")


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


def fidelity_check(study: optuna.Study) -> dict[str, Any] | None:
    """The study's fidelity calibration (see ``fedhpo.tune``), if it ran."""
    value = study.user_attrs.get(FIDELITY_CHECK)
    return dict(value) if value else None


def trial_steps(trial: optuna.trial.FrozenTrial) -> int:
    """Client local steps a trial's run took (0 if it recorded none)."""
    return int(trial.user_attrs.get(STEPS) or 0)
