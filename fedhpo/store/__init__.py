"""fedhpo.store: study storage URLs, trial records, leaderboards and best-config export."""

from fedhpo.store import records
from fedhpo.store._export import best_config, best_trial, export_best
from fedhpo.store._leaderboard import (
    count_states,
    incomplete_summary,
    leaderboard,
    other_trials,
    pareto_fronts,
    running_trials,
    study_summaries,
)
from fedhpo.store._storage import (
    DEFAULT_STORAGE,
    Liveness,
    check_study_name,
    mask_url,
    open_storage,
    sqlite_file,
    storage_flag,
)
from fedhpo.store.retry import RetryPolicy

__all__ = [
    "DEFAULT_STORAGE",
    "Liveness",
    "RetryPolicy",
    "best_config",
    "best_trial",
    "check_study_name",
    "count_states",
    "export_best",
    "incomplete_summary",
    "leaderboard",
    "mask_url",
    "storage_flag",
    "open_storage",
    "records",
    "sqlite_file",
    "other_trials",
    "pareto_fronts",
    "running_trials",
    "study_summaries",
]
