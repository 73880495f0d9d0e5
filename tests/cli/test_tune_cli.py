"""`fedhpo tune` on the command line: counts it refuses before anything is written, and a
Ctrl-C during promotion."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from fedhpo.sim import models
from fedhpo.store import records as rec
from tests.cli.test_cli import run_cli
from tests.helpers import BASE, LR_MU
from tests.tune.procs import wait_until

# A model whose building in a promotion run (promotion's `_batched`, in a pool process)
# marks the process as started and then waits for good: a promotion run is under way.
PROMOTION_GATE = """\
import os
import sys
import time
from pathlib import Path

from torch import nn

from fedhpo.sim.models import register_model


def _promoting():
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code.co_name == "_batched":
            return True
        frame = frame.f_back
    return False


@register_model("promotion_gate")
def model(input_shape, num_classes):
    if _promoting():
        Path(f"started.{os.getpid()}").touch()
        while True:
            time.sleep(0.05)
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], num_classes))
"""


@pytest.fixture(autouse=True)
def _own_model_registry(monkeypatch) -> None:
    monkeypatch.setattr(models, "_MODELS", dict(models._MODELS))


def _space(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "sp.yaml").write_text(
        "base: base.yaml\nfidelity: {rounds: 2}\n"
        "tuner: {sampler: random, pruner: none, seed: 0}\nparams:\n" + LR_MU
    )


NO_TRIALS = (
    "`--trials`: 0 runs no trial and promotes none; give --trials N >= 1, or --trials 0 --promote K"
)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ([], NO_TRIALS),
        (["--budget", "2"], NO_TRIALS),
        (["--create-only"], "`--trials`: 0 with --create-only makes a study that runs no trial"),
        (["--promote", "1"], "`--trials`: 0 only promotes the trials of an existing study"),
    ],
)
def test_trials_0_for_a_new_study_exits_2_and_writes_nothing(
    capsys, tmp_path, monkeypatch, extra: list[str], fragment: str
) -> None:
    # the plan line read "study sp in sqlite:///fedhpo.db: , 1 job(s)", and a study with one
    # waiting trial was made; with --create-only, "(budget over all workers: )"
    monkeypatch.chdir(tmp_path)
    _space(tmp_path)
    code, out, err = run_cli(capsys, "tune", "--space", "sp.yaml", "--trials", "0", *extra)
    assert code == 2 and fragment in err and err.count("\n") == 1, err
    assert out == ""  # no plan line
    assert not (tmp_path / "fedhpo.db").exists()


def test_a_budget_promotion_takes_all_of_exits_2_before_the_plan(
    capsys, tmp_path, monkeypatch
) -> None:
    # "1 trials, 1037% of the budget", then nothing to export, exit 0
    monkeypatch.chdir(tmp_path)
    _space(tmp_path)
    argv = ["tune", "--space", "sp.yaml", "--budget", "2", "--promote", "1", "--seeds", "2"]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith("fedhpo: error: `--budget`: 2 full runs leave the search ")
    assert "less than one trial's run" in err and "give --budget" in err
    assert not (tmp_path / "fedhpo.db").exists()


def test_trials_0_on_an_existing_study_only_promotes(capsys, tmp_path, monkeypatch) -> None:
    # without --promote it ran nothing and replaced the study's compute record with
    # "compute: 0 full-run equivalents"
    monkeypatch.chdir(tmp_path)
    _space(tmp_path)
    code, _, err = run_cli(capsys, "tune", "--space", "sp.yaml", "--trials", "2")
    assert code == 0, err

    def state() -> tuple[dict, int]:
        study = optuna.load_study(study_name="sp", storage="sqlite:///fedhpo.db")
        return study.user_attrs, len(study.trials)

    top = optuna.load_study(study_name="sp", storage="sqlite:///fedhpo.db").best_trial.number
    before = state()
    for extra in ([], ["--create-only"], ["--budget", "1"]):
        code, out, err = run_cli(capsys, "tune", "--space", "sp.yaml", "--trials", "0", *extra)
        assert code == 2 and "`--trials`: 0 " in err and out == "", (extra, err)
        assert state() == before
    code, out, err = run_cli(
        capsys, "tune", "--space", "sp.yaml", "--trials", "0", "--promote", "1", "--seeds", "2"
    )
    assert code == 0, err
    assert "study sp in sqlite:///fedhpo.db: no new trials, promote the top 1, 1 job(s)" in out
    attrs, count = state()
    assert count == before[1] and set(attrs[rec.PROMOTIONS]) == {str(top), "0"}  # and the base
    assert attrs[rec.COMPUTE]["promotion_steps"] > 0
    assert attrs[rec.COMPUTE]["full_runs"] > 0 and "compute: " in out


def _running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return "zombie" not in state


def _as_a_terminal_job() -> None:
    """SIGINT at its default, as a terminal's foreground job has it: a test run started in the
    background by a shell without job control (`make test &`) ignores SIGINT, and its
    children inherit that, so no Ctrl-C would reach the command."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_ctrl_c_during_promotion_is_one_line_and_exit_130(tmp_path: Path, how: str) -> None:
    # Ctrl-C reached the promotion pool's processes too: each printed a full traceback; a
    # SIGTERM to tune alone ended it with 143 and left the pool's processes running
    (tmp_path / "promotion_gate_plugin.py").write_text(PROMOTION_GATE)
    (tmp_path / "base.yaml").write_text(BASE.replace("{name: logreg}", "{name: promotion_gate}"))
    (tmp_path / "sp.yaml").write_text(
        "base: base.yaml\nfidelity: {rounds: 3}\n"
        "tuner: {sampler: random, pruner: none, seed: 0}\nparams:\n" + LR_MU
    )
    argv = ["tune", "--space", "sp.yaml", "--trials", "2", "--promote", "1", "--seeds", "2"]
    argv += ["--jobs", "2", "--plugin", "promotion_gate_plugin"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedhpo.cli.main", *argv],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's Ctrl-C reaches it
        preexec_fn=_as_a_terminal_job,
    )
    try:
        started = wait_until("a promotion run", lambda: list(tmp_path.glob("started.*")))
        if how == "ctrl-c":  # a terminal's Ctrl-C: the whole process group
            os.killpg(proc.pid, signal.SIGINT)
        else:  # `kill PID`: tune alone
            os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines() == ["fedhpo: interrupted"], err
    assert "promoted trial" not in out
    pids = [int(p.name.split(".")[1]) for p in started]
    assert not [pid for pid in pids if _running(pid)]  # the pool's processes are gone
