"""Workers and sessions in the corners QA found: a trial failed meanwhile by another worker
(its heartbeat looked stale to it, after a long pause or a database outage past the grace
period) is dropped, not a crash; a second signal cannot lose a trial being queued again; a
resumed session counts the trials queued again among its own; sessions draw their own
proposals."""

from __future__ import annotations

import os
import signal

import optuna
import pytest
from optuna.trial import TrialState

from fedhpo.store import open_storage
from fedhpo.store.budget import Budget, RetryTrial, save_budget
from fedhpo.store.lock import StudyLock
from fedhpo.tune._worker import Worker


@pytest.mark.parametrize("late", ["report", "return"])
def test_a_trial_failed_meanwhile_is_dropped_and_the_worker_goes_on(
    tmp_path, capsys, late: str
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=open_storage(url), study_name="s", direction="maximize")
    save_budget(study, Budget(trials=2))

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        if trial.number == 0:  # what another worker's stale-trial check does to it
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            RetryTrial()(study, study._storage.get_trial(trial._trial_id))
            if late == "report":
                trial.report(x, 1)  # UpdateFinishedTrialError: the trial is finished
        return x

    report = Worker(study, StudyLock(url, "s"), objective).run()
    trials = study.get_trials()
    assert trials[0].state == TrialState.FAIL and 0 not in report.errors
    assert 0 not in report.states  # the worker told nothing about it: it was not its own
    assert trials[1].params == trials[0].params  # the queued retry ran, and the next trial
    assert [t.state for t in trials[1:]] == [TrialState.COMPLETE] * 2
    assert "trial 0 was failed meanwhile by another worker" in capsys.readouterr().err


def test_a_second_signal_while_a_stopped_trial_is_queued_again_loses_nothing(
    tmp_path, monkeypatch
) -> None:
    # Ctrl-C twice: the second came between failing the stopped trial and queueing it again,
    # and the trial was lost (FAIL, "queued again", nothing queued)
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=open_storage(url), study_name="s", direction="maximize")
    save_budget(study, Budget(trials=2))
    tell = study.tell

    def tell_then_signal(*args, **kwargs):
        frozen = tell(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C, right after the FAIL
        return frozen

    monkeypatch.setattr(study, "tell", tell_then_signal)

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0.0, 1.0)
        os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C, mid-trial
        raise AssertionError("the signal interrupts the trial")

    with pytest.raises(KeyboardInterrupt):  # the second signal still stops the worker
        Worker(study, StudyLock(url, "s"), objective).run()
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.WAITING]  # queued again all the same


def _interrupted_study(url: str, name: str) -> optuna.Study:
    """Trial 0 done; trials 1 and 2 stopped by Ctrl-C and queued again as 3 and 4."""
    study = optuna.create_study(storage=open_storage(url), study_name=name, direction="maximize")
    x = optuna.distributions.FloatDistribution(0.0, 1.0)
    study.tell(study.ask({"x": x}), 0.5)
    for _ in range(2):
        trial = study.ask({"x": x})
        study.tell(trial, state=TrialState.FAIL)
        RetryTrial()(study, study._storage.get_trial(trial._trial_id))
    return study


def test_a_resumed_session_counts_the_trials_queued_again_among_its_own(
    tmp_path, make_space
) -> None:
    # after Ctrl-C left 2 trials queued again, `tune --trials 3` ran 5 trials (bar "5/3")
    from fedhpo.space import load_space
    from fedhpo.tune._join import _ensure_budget
    from fedhpo.tune._runner import TuneOptions, start_budget
    from tests.helpers import LR_MU

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = _interrupted_study(url, "s")
    opts = TuneOptions(storage=url, study="s", trials=3)
    assert start_budget(load_space(make_space(LR_MU)), opts, study).trials == 1 + 3
    _interrupted_study(url, "w")  # a worker's first budget on such a study, alike
    opts = TuneOptions(storage=url, study="w", trials=3)
    assert _ensure_budget(opts, 3, None).trials == 1 + 3


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_tune_sessions_of_one_study_draw_their_own_proposals(tmp_path, make_space) -> None:
    # two `fedhpo tune` of one study started together loaded it at the same point, with the
    # same sampler seed, and ran the same configs side by side
    from fedhpo.space import load_space
    from fedhpo.store import records as rec
    from fedhpo.tune import tune
    from fedhpo.tune._runner import TuneOptions, _load_for_worker
    from tests.helpers import LR_MU

    url = f"sqlite:///{tmp_path / 's.db'}"
    space = load_space(make_space(LR_MU))
    tune(space, storage=url, study="s", trials=1, log=lambda _: None)
    tune(space, storage=url, study="s", trials=1, log=lambda _: None)
    assert optuna.load_study(study_name="s", storage=url).user_attrs[rec.SESSIONS] == 2
    proposals = []
    for session in (0, 1):  # the same study, trials and worker index: only the session differs
        study = _load_for_worker(space, TuneOptions(url, "s", 1, session=session), 0)
        proposals.append(study.ask().suggest_float("client.lr", 1e-4, 1.0, log=True))
    assert proposals[0] != proposals[1]


def test_a_stop_while_the_database_is_down_stops_the_worker(tmp_path, monkeypatch, capsys):
    # SIGTERM during an outage: the worker waited out --db-retry, then exited 2
    from sqlalchemy.exc import OperationalError

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=open_storage(url), study_name="s", direction="maximize")
    save_budget(study, Budget(trials=2))

    def ask_while_down(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # the scheduler's notice, mid-outage
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(study, "ask", ask_while_down)
    report = Worker(study, StudyLock(url, "s"), lambda trial: 0.0).run()
    assert report.interrupted == "SIGTERM" and report.states == {}
    assert "stopped by SIGTERM while the database was unreachable" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_a_claim_left_without_a_heartbeat_is_failed_and_queued_again_after_the_grace(
    tmp_path,
) -> None:
    # a worker killed between recording itself on its new trial and the trial's first
    # heartbeat left it RUNNING without one; Optuna's stale check skips such trials, so
    # workers of a trial budget waited for it forever
    import datetime

    import sqlalchemy

    from fedhpo.store import Liveness
    from fedhpo.store import records as rec

    url = f"sqlite:///{tmp_path / 's.db'}"
    storage = open_storage(url, liveness=Liveness(interval=1, grace=2))
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    save_budget(study, Budget(trials=2, timeout=20))  # the timeout only ends a failing test
    orphan = study.ask()
    orphan.suggest_float("x", 0.0, 1.0)
    orphan.set_user_attr(rec.WORKER, {"host": "elsewhere", "pid": 999999})
    long_ago = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    with storage.engine.begin() as db:  # it started a minute ago, well past the grace
        db.execute(
            sqlalchemy.text("UPDATE trials SET datetime_start = :t WHERE trial_id = :i"),
            {"t": long_ago - datetime.timedelta(minutes=1), "i": orphan._trial_id},
        )
    report = Worker(study, StudyLock(url, "s"), lambda t: t.suggest_float("x", 0.0, 1.0)).run()
    ts = study.get_trials()
    assert [t.state for t in ts] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert ts[0].params in [t.params for t in ts[1:]]  # queued again and run
    assert sorted(report.states) == [1, 2]


def test_a_second_live_tune_session_is_refused_and_a_dead_one_frees_the_study(
    tmp_path, monkeypatch, capsys
) -> None:
    # two `fedhpo tune` of one study at once: the second replaced the first's budget with
    # its own, counted from the first's progress (6 + 6 trials ran 8 in all, both exit 0)
    import socket

    from fedhpo.cli.main import main
    from fedhpo.store.budget import load_budget, used
    from tests.tune.procs import gate, gated_space, held, start, trials

    url = f"sqlite:///{tmp_path / 'c.db'}"
    space = gated_space(tmp_path, monkeypatch)
    args = ["tune", "--space", str(space), "--storage", url, "--study", "c", "--trials", "3"]
    args += ["--plugin", "gate_plugin", "--heartbeat", "1", "--grace", "3", "--timeout", "30"]
    first = start(tmp_path, *args, name="first")
    try:
        held(url, "c", 1)
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"{socket.gethostname()}:{first.pid}" in err
        assert f"fedhpo worker --study c --storage {url}" in err
        budget = load_budget(optuna.load_study(study_name="c", storage=url))
        assert budget is not None and budget.trials == 3
        first.kill()  # a crash: its session is over, its unspent trials go with it
        assert first.wait() == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
    gate(tmp_path).unlink()
    assert main(args) == 0  # at once, and "3 trials" means 3 more
    ts = trials(url, "c")
    assert used(ts) == 3 and all(t.state.is_finished() for t in ts)
