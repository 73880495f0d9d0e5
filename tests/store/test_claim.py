"""Claiming trials: two processes that ask for the queued trial at the same moment never both
get it, and the study lock makes a trial budget exact."""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

import optuna
from optuna.trial import TrialState

from fedhpo.store import open_storage


def _ask_behind_barrier(url: str, barrier: Any, out: Any) -> None:
    """Ask for a trial; the claim of a queued trial waits until both processes reach it, so
    both have read the queue before either writes (the race of issue 9, forced)."""
    storage = open_storage(url)
    claim = type(storage).set_trial_state_values

    def claim_after_barrier(self: Any, trial_id: int, state: TrialState, values: Any = None):
        if state == TrialState.RUNNING:
            barrier.wait(timeout=60)
        return claim(self, trial_id, state, values)

    type(storage).set_trial_state_values = claim_after_barrier  # type: ignore[method-assign]
    study = optuna.load_study(study_name="race", storage=storage)
    trial = study.ask()
    out.put((trial.number, trial.params.get("x")))


def test_two_processes_asking_at_once_do_not_share_the_queued_trial(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    study = optuna.create_study(study_name="race", storage=open_storage(url))
    study.enqueue_trial({"x": 0.5})
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_ask_behind_barrier, args=(url, barrier, out)) for _ in range(2)]
    for p in procs:
        p.start()
    got = sorted(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]
    # one process claimed the queued trial 0, the other made trial 1 (fresh, no fixed x)
    assert [number for number, _ in got] == [0, 1]
    trials = optuna.load_study(study_name="race", storage=url).trials
    assert [t.state for t in trials] == [TrialState.RUNNING, TrialState.RUNNING]
    assert trials[0].system_attrs.get("fixed_params") == {"x": 0.5}


def test_a_finished_trial_cannot_be_claimed(tmp_path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'c.db'}")
    study = optuna.create_study(study_name="c", storage=storage)
    study.enqueue_trial({"x": 1.0})
    trial = study.ask()
    study.tell(trial, 1.0)
    assert study.ask().number == 1  # the finished trial is not handed out again
