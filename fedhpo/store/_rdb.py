"""Optuna's RDB storage with an atomic claim of queued trials and retried connection errors."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import optuna
import sqlalchemy
from optuna.storages._rdb import models  # the trials table; stable across Optuna 5.x
from optuna.trial import TrialState

from fedhpo.store import records as rec
from fedhpo.store.retry import RetryPolicy, call_with_retry

# The backend methods that run one transaction each (the others call these), including the
# private ones Optuna's trial cache calls; each is retried when the database is unreachable.
_RETRIED = (
    "create_new_study",
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "get_all_studies",
    "_create_new_trial",
    "_set_trial_param",
    "get_trial_param",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial_id_from_study_id_trial_number",
    "get_trial",
    "_get_trials",
    "_get_best_trial_id",
    "record_heartbeat",
)


class FedhpoStorage(optuna.storages.RDBStorage):
    """An ``RDBStorage`` for many workers.

    * A queued (WAITING) trial is claimed with one conditional ``UPDATE ... WHERE state =
      'WAITING'``, so two processes can never both run it. Optuna's own claim reads the state,
      then writes it, guarded by ``SELECT ... FOR UPDATE``, which SQLite ignores.
    * With a :class:`RetryPolicy`, calls that fail because the server is unreachable are
      retried with backoff instead of failing the trial.
    * A RUNNING trial that a fedhpo worker recorded itself on but that has no heartbeat yet
      (the worker died or was stopped between the two) is stale once it started longer ago
      than the grace period: Optuna's check skips trials without a heartbeat, and workers of a
      trial budget would wait for it forever.
    """

    def __init__(self, url: str, *, retry: RetryPolicy | None = None, **kwargs: Any) -> None:
        self.retry = retry
        super().__init__(url, **kwargs)

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        if state == TrialState.RUNNING and values is None:
            return call_with_retry(lambda: self._claim(trial_id), self.retry, "trial claim")
        first = [True]

        def attempt() -> bool:
            try:
                return super(FedhpoStorage, self).set_trial_state_values(trial_id, state, values)
            except optuna.exceptions.UpdateFinishedTrialError:
                # A retry after a lost acknowledgement: the first attempt did commit.
                if not first[0] and self.get_trial(trial_id).state == state:
                    return True
                raise
            finally:
                first[0] = False

        return call_with_retry(attempt, self.retry, "trial state update")

    def _claim(self, trial_id: int) -> bool:
        """WAITING -> RUNNING in one statement: True for exactly one caller."""
        table = models.TrialModel
        now = datetime.now(timezone.utc).replace(tzinfo=None)  # Optuna stores naive UTC
        statement = (
            sqlalchemy.update(table)
            .where(table.trial_id == trial_id, table.state == TrialState.WAITING)
            .values({table.state: TrialState.RUNNING, table._datetime_start_utc: now})
            .execution_options(synchronize_session=False)
        )
        session = self.scoped_session()
        try:
            claimed = session.execute(statement).rowcount == 1  # type: ignore[attr-defined]
            session.commit()
        except Exception:
            session.rollback()
            raise
        finally:
            session.close()
        if not claimed and self.get_trial(trial_id).state.is_finished():
            raise optuna.exceptions.UpdateFinishedTrialError(f"trial {trial_id} is finished")
        return claimed

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return call_with_retry(lambda: self._stale(study_id), self.retry, "stale trial check")

    def _stale(self, study_id: int) -> list[int]:
        stale = optuna.storages.RDBStorage._get_stale_trial_ids(self, study_id)
        assert self.heartbeat_interval is not None  # the check runs with heartbeats only
        grace = self.grace_period or 2 * self.heartbeat_interval
        now = datetime.now(timezone.utc).replace(tzinfo=None)  # Optuna stores naive UTC
        table = models.TrialModel
        session = self.scoped_session()
        try:
            unbeaten = (
                session.query(table.trial_id)
                .filter(table.study_id == study_id, table.state == TrialState.RUNNING)
                .filter(table._datetime_start_utc < now - timedelta(seconds=grace))
                .filter(~table.heartbeats.any())
                .filter(table.user_attributes.any(models.TrialUserAttributeModel.key == rec.WORKER))
                .all()
            )
        finally:
            session.close()
        return stale + [row[0] for row in unbeaten if row[0] not in stale]


def _retrying(name: str) -> Callable[..., Any]:
    method = getattr(optuna.storages.RDBStorage, name)

    @functools.wraps(method)
    def wrapper(self: FedhpoStorage, *args: Any, **kwargs: Any) -> Any:
        return call_with_retry(lambda: method(self, *args, **kwargs), self.retry, name)

    return wrapper


for _name in _RETRIED:
    setattr(FedhpoStorage, _name, _retrying(_name))
