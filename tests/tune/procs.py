"""Helpers for the real-process tests: a gated model plugin, worker processes, waiting on the
database, and the consistency checks every fault test ends with."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from fedhpo.sim import models
from fedhpo.store import records as rec
from fedhpo.store.budget import retried, used
from tests.helpers import BASE, LR_MU

FEDHPO = [sys.executable, "-m", "fedhpo.cli.main"]

# Model "gated": logreg whose construction (the start of every trial's run) waits while the
# file named by FEDHPO_TEST_GATE exists. A test closes the gate to hold every worker inside a
# trial, acts (kill, restart the database), then opens it: no timing guesses.
GATE_PLUGIN = '''\
"""Test plugin: model 'gated', a logreg whose building waits while the gate file exists
(but for `fedhpo tune`'s check of the model before it writes a study: not a trial)."""
import os
import sys
import time
from pathlib import Path

from torch import nn

from fedhpo.sim.models import register_model


def _checked():
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code.co_name == "check_run":
            return True
        frame = frame.f_back
    return False


@register_model("gated")
def gated(input_shape, num_classes):
    gate = os.environ.get("FEDHPO_TEST_GATE")
    while gate and not _checked() and Path(gate).exists():
        time.sleep(0.02)
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], num_classes))
'''


def gated_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rounds: int = 3, tuner: str = ""
) -> Path:
    """Plugin module, base config (model gated) and space file in ``tmp_path``; gate closed.

    The plugin is imported here too (``tune`` checks the model name before it writes a study),
    into a copy of the model registry that the test's end throws away.
    """
    (tmp_path / "gate_plugin.py").write_text(GATE_PLUGIN)
    (tmp_path / "base.yaml").write_text(BASE.replace("{name: logreg}", "{name: gated}"))
    tuner = tuner or "{sampler: random, pruner: none, seed: 0}"
    space = tmp_path / "space.yaml"
    space.write_text(
        "base: base.yaml\nobjective: {metric: val_accuracy, direction: maximize}\n"
        f"fidelity: {{rounds: {rounds}}}\ntuner: {tuner}\nparams:\n{LR_MU}"
    )
    gate(tmp_path).touch()
    monkeypatch.setattr(models, "_MODELS", dict(models._MODELS))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "gate_plugin", raising=False)
    importlib.import_module("gate_plugin")
    return space


def gate(tmp_path: Path) -> Path:
    return tmp_path / "gate.closed"


def start(tmp_path: Path, *args: str, name: str, group: bool = False) -> subprocess.Popen[str]:
    """A fedhpo command in its own process, output to ``tmp_path/name.out|.err``; ``group``:
    in a process group of its own, as a shell's foreground job (``os.killpg`` then signals
    it and its job processes together, as Ctrl-C in a terminal does)."""
    env = {**os.environ, "FEDHPO_TEST_GATE": str(gate(tmp_path))}
    return subprocess.Popen(
        [*FEDHPO, *args],
        cwd=tmp_path,
        env=env,
        stdout=(tmp_path / f"{name}.out").open("w"),
        stderr=(tmp_path / f"{name}.err").open("w"),
        text=True,
        start_new_session=group,
    )


# Plugin "slow_start": imported by a job process of `fedhpo tune --jobs N` (not by the parent),
# it leaves a file named after its process and waits while the gate is closed: the jobs'
# start-up takes as long as the test wants (a loaded machine, in QA's report).
SLOW_START_PLUGIN = """\
import multiprocessing
import os
import time
from pathlib import Path

if multiprocessing.parent_process() is not None:
    gate = Path(os.environ["FEDHPO_TEST_GATE"])
    Path(f"{gate}.{os.getpid()}.started").touch()
    while gate.exists():
        time.sleep(0.02)
"""


def started_jobs(tmp_path: Path) -> list[Path]:
    """The marks of the job processes that imported the slow-start plugin so far."""
    return sorted(tmp_path.glob(f"{gate(tmp_path).name}.*.started"))


def alive(pid: int) -> bool:
    """Whether process ``pid`` still exists (a zombie not yet reaped counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def wait_until(what: str, check: Callable[[], Any], timeout: float = 180) -> Any:
    """Poll ``check`` until it returns something truthy (a condition, not a timing bet)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def trials(url: str, study: str) -> list[FrozenTrial]:
    return optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)


def running_pids(url: str, study: str) -> dict[int, int]:
    """{worker pid: trial number} of the trials running now with all their parameters drawn
    (so their run has begun: they wait at the gate)."""
    return {
        t.user_attrs[rec.WORKER]["pid"]: t.number
        for t in trials(url, study)
        if t.state == TrialState.RUNNING and rec.WORKER in t.user_attrs and len(t.params) == 2
    }


def held(url: str, study: str, n: int) -> dict[int, int]:
    """Wait until ``n`` workers each hold a trial behind the closed gate: {pid: trial}."""

    def check() -> dict[int, int] | None:
        try:
            pids = running_pids(url, study)
        except KeyError:  # the study is not created yet
            return None
        return pids if len(pids) == n else None

    return wait_until(f"{n} workers inside a trial", check)


def finish(procs: list[subprocess.Popen[str]], timeout: float = 240) -> list[int]:
    codes = []
    for p in procs:
        codes.append(p.wait(timeout=timeout))
    return codes


def reported(tmp_path: Path, names: list[str]) -> list[int]:
    """Trial numbers the workers printed as finished (complete or pruned), with repeats."""
    numbers = []
    for name in names:
        for line in (tmp_path / f"{name}.out").read_text().splitlines():
            if line.startswith("trial ") and (": complete" in line or ": pruned" in line):
                numbers.append(int(line.split()[1].rstrip(":")))
    return numbers


def check_consistent(url: str, study: str, budget: int) -> dict[str, int]:
    """Nothing lost, nothing twice, nothing left running; returns the figures."""
    ts = trials(url, study)
    assert [t.number for t in ts] == list(range(len(ts))), "trial numbers repeat or skip"
    assert [t.number for t in ts if not t.state.is_finished()] == [], "trials left unfinished"
    done = [t for t in ts if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    failed = [t for t in ts if t.state == TrialState.FAIL]
    assert {t.number for t in failed} == retried(ts), "a failure that was not retried"
    assert used(ts) == budget and len(done) == budget
    retries = [t for t in done if "failed_trial" in t.system_attrs]
    for t in retries:  # a retry runs the parameters its failed trial had drawn
        original = ts[t.system_attrs["retry_history"][-1]]
        assert original.params.items() <= t.params.items()
    return {"completed": len(done), "failed": len(failed), "retried": len(retries), "lost": 0}
