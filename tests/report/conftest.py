"""Studies to report on, built once per session: a pruned and promoted one, a multi-objective
one, one with no complete trial, an empty one, and a foreign one full of hostile text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from fedhpo.store import records as rec
from fedhpo.tune import tune
from tests.helpers import BASE as HELPER_BASE
from tests.helpers import LR_MU

BASE = HELPER_BASE.replace("rounds: 12", "rounds: 10")


HOSTILE = "<script>alert(1)</script>"
HOSTILE_PARAM = '<img src=x onerror="alert(2)">'
HOSTILE_REASON = "error: </td><script>alert(3)</script>"


@dataclass(frozen=True)
class Studies:
    storage: str
    promoted: optuna.Study  # 8 trials, median pruning, top 3 promoted with 2 seeds
    multi: optuna.Study  # two objectives
    failing: optuna.Study  # fedhpo attrs, trials failed or pruned, none complete
    empty: optuna.Study  # fedhpo attrs, no trial at all
    hostile: optuna.Study  # hostile study name, param name, reasons, config text


def _space(folder: Path, name: str, params: str, tuner: str, objective: str, rounds: int) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"base: base.yaml\nobjective: {objective}\nfidelity: {{rounds: {rounds}}}\n"
        f"tuner: {tuner}\nparams:\n{params}"
    )
    return path


def _fedhpo_attrs(study: optuna.Study, metric: str = "val_accuracy") -> None:
    study.set_user_attr(rec.VERSION, "0.1.0")
    study.set_user_attr(rec.OBJECTIVES, [{"metric": metric, "direction": "maximize"}])
    study.set_user_attr(rec.BASE_CONFIG, {"client": {"lr": 0.05}, "federation": {"rounds": 10}})
    study.set_user_attr(rec.SPACE_FILE, "spaces/x.yaml")


def _failing(storage: str) -> optuna.Study:
    study = optuna.create_study(storage=storage, study_name="failing", direction="maximize")
    _fedhpo_attrs(study)
    dist = {"client.lr": FloatDistribution(1e-4, 1.0, log=True)}
    for i, state in enumerate([TrialState.FAIL, TrialState.PRUNED, TrialState.FAIL]):
        trial = study.ask(dist)
        if state == TrialState.PRUNED:
            trial.report(0.2, step=1)
            trial.report(0.3, step=2)
            trial.set_user_attr(rec.CURVES, {"round": [1, 2], "val_accuracy": [0.2, 0.3]})
        trial.set_user_attr(rec.STATUS_REASON, f"error: RuntimeError: boom {i}")
        trial.set_user_attr(rec.WALL_SECONDS, 0.5)
        study.tell(trial, state=state)
    return study


def _hostile(storage: str) -> optuna.Study:
    study = optuna.create_study(storage=storage, study_name=HOSTILE, direction="maximize")
    _fedhpo_attrs(study, metric=f"acc{HOSTILE}")
    study.set_user_attr(rec.SPACE_FILE, f"../{HOSTILE}.yaml")
    study.set_user_attr(rec.SPACE_TEXT, f"params: {HOSTILE}")
    study.set_user_attr(rec.BASE_CONFIG, {"model": {"name": HOSTILE}})
    dists = {
        HOSTILE_PARAM: FloatDistribution(1e-3, 1.0, log=True),
        "choice": CategoricalDistribution([HOSTILE, "plain"]),
    }
    for i in range(5):
        trial = study.ask(dists)
        trial.set_user_attr(rec.CLIENT_ACCURACIES, [0.5, 0.7, 0.9])
        trial.set_user_attr(rec.STATUS_REASON, HOSTILE_REASON)
        for step in (1, 2, 3):
            trial.report(0.1 * i + 0.05 * step, step=step)
        study.tell(trial, 0.1 * i + 0.2 + 0.1 * trial.params[HOSTILE_PARAM])
    failed = study.ask(dists)
    failed.set_user_attr(rec.STATUS_REASON, HOSTILE_REASON)
    study.tell(failed, state=TrialState.FAIL)
    return study


@pytest.fixture(scope="session")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Studies:
    folder = tmp_path_factory.mktemp("report_studies")
    (folder / "base.yaml").write_text(BASE)
    storage = f"sqlite:///{folder / 'studies.db'}"
    quiet = {"storage": storage, "log": lambda _: None}
    promoted_space = _space(
        folder,
        "lr_mu",
        LR_MU,
        "{sampler: random, pruner: median, trials: 8, seed: 3}",
        "{metric: val_accuracy, direction: maximize}",
        8,
    )
    promoted = tune(promoted_space, study="lr_mu", promote_top=3, seeds=2, **quiet)
    assert {t.state for t in promoted.trials} == {TrialState.COMPLETE, TrialState.PRUNED}
    multi_space = _space(
        folder,
        "mo",
        LR_MU + "  federation.clients_per_round: {type: int, low: 1, high: 8}\n",
        "{sampler: random, trials: 6, seed: 1}",
        "[{metric: val_accuracy, direction: maximize}, {metric: bytes_sent}]",
        4,
    )
    multi = tune(multi_space, study="mo", **quiet)
    empty = optuna.create_study(storage=storage, study_name="empty", direction="maximize")
    _fedhpo_attrs(empty)
    return Studies(
        storage=storage,
        promoted=promoted,
        multi=multi,
        failing=_failing(storage),
        empty=empty,
        hostile=_hostile(storage),
    )
