"""fedhpo.store: study storage URLs, trial records, leaderboards and best-config export."""

from fedhpo.store import records
from fedhpo.store._export import best_config, best_trial, export_best
from fedhpo.store._leaderboard import leaderboard, other_trials, study_summaries
from fedhpo.store._storage import DEFAULT_STORAGE, mask_url, open_storage

__all__ = [
    "DEFAULT_STORAGE",
    "best_config",
    "best_trial",
    "export_best",
    "leaderboard",
    "mask_url",
    "open_storage",
    "records",
    "other_trials",
    "study_summaries",
]
