"""`fedhpo worker`, `tune --create-only`, plugins in job processes, and searches whose every
trial failed."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from fedhpo.sim import models
from fedhpo.store import records as rec
from tests.cli.test_cli import run_cli
from tests.helpers import BASE, LR_MU

# The broken model builds, and runs on the two rows `fedhpo tune` checks it on before a
# study is written, but fails on a training batch: only its trials can find that out.
PLUGIN = """\
from torch import nn
from fedhpo.sim.models import register_model


class Model(nn.Module):
    def __init__(self, d, k, broken):
        super().__init__()
        self.linear, self.broken = nn.Linear(d, k), broken

    def forward(self, x):
        if self.broken and x.shape[0] > 2:
            raise RuntimeError("boom: this plugin model is broken")
        return self.linear(x.flatten(1))


@register_model("{name}")
def model(input_shape, num_classes):
    return Model(input_shape[0], num_classes, {broken})
"""


def _space(tmp_path: Path, model: str, broken: bool = False) -> Path:
    (tmp_path / f"{model}.py").write_text(PLUGIN.format(name=model, broken=broken))
    (tmp_path / "base.yaml").write_text(BASE.replace("{name: logreg}", f"{{name: {model}}}"))
    space = tmp_path / "sp.yaml"
    space.write_text(
        "base: base.yaml\nfidelity: {rounds: 3}\n"
        "tuner: {sampler: random, pruner: none, trials: 3, seed: 0}\nparams:\n" + LR_MU
    )
    return space


@pytest.fixture(autouse=True)
def _own_model_registry(monkeypatch) -> None:
    """Plugins imported here register models; keep them out of other tests' registry."""
    monkeypatch.setattr(models, "_MODELS", dict(models._MODELS))


def _trials(tmp_path: Path, study: str = "sp") -> list[optuna.trial.FrozenTrial]:
    url = f"sqlite:///{tmp_path / 'fedhpo.db'}"
    return optuna.load_study(study_name=study, storage=url).trials


def test_job_processes_import_the_plugins(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    space = _space(tmp_path, "fedhpo_jobs_plugin_model")
    args = ("--space", str(space), "--plugin", "fedhpo_jobs_plugin_model", "--jobs", "2")
    code, _, err = run_cli(capsys, "tune", *args, "--promote", "1", "--seeds", "1")
    assert code == 0, err
    trials = _trials(tmp_path)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3, [
        t.user_attrs.get(rec.STATUS_REASON) for t in trials
    ]
    promoted = optuna.load_study(study_name="sp", storage="sqlite:///fedhpo.db").user_attrs
    assert all(v["mean"] is not None for v in promoted[rec.PROMOTIONS].values())


def test_a_search_whose_every_trial_failed_exits_2_with_the_first_error(
    capsys, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    space = _space(tmp_path, "fedhpo_broken_plugin_model", broken=True)
    args = ("--space", str(space), "--plugin", "fedhpo_broken_plugin_model", "--trials", "2")
    code, _, err = run_cli(capsys, "tune", *args)
    assert code == 2
    assert "all 2 trial(s) failed" in err and "boom: this plugin model is broken" in err
    assert [t.state for t in _trials(tmp_path)] == [TrialState.FAIL] * 2


def test_create_only_then_workers_share_the_budget(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(BASE)
    space = tmp_path / "sp.yaml"
    space.write_text(
        "base: base.yaml\nfidelity: {rounds: 2}\n"
        "tuner: {sampler: random, pruner: none, seed: 0}\nparams:\n" + LR_MU
    )
    code, out, err = run_cli(
        capsys, "tune", "--space", str(space), "--trials", "3", "--create-only"
    )
    assert code == 0, err
    assert "fedhpo worker --study sp" in out
    assert [t.state for t in _trials(tmp_path)] == [TrialState.WAITING]  # the base config
    code, out, err = run_cli(capsys, "worker", "--study", "sp")
    assert code == 0, err
    assert "ran 3 trial(s)" in out and "budget over all workers: 3 trials" in out
    code, out, _ = run_cli(capsys, "worker", "--study", "sp")  # the budget is used up
    assert code == 0 and "ran no trial: the study's budget (3 trials) is used" in out
    trials = _trials(tmp_path)
    assert len(trials) == 3 and all(t.state == TrialState.COMPLETE for t in trials)
    assert all(t.user_attrs[rec.WORKER]["pid"] > 0 for t in trials)


def test_a_worker_names_a_compute_budget(capsys, tmp_path, monkeypatch) -> None:
    # it printed "(budget over all workers: )" for a study with a compute budget only
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(BASE)
    space = tmp_path / "sp.yaml"
    space.write_text("base: base.yaml\nfidelity: {rounds: 2}\nparams:\n" + LR_MU)
    code, out, err = run_cli(
        capsys, "tune", "--space", str(space), "--budget", "0.5", "--create-only"
    )
    assert code == 0 and "budget over all workers: 0.5 full runs" in out, err
    code, out, err = run_cli(capsys, "worker", "--study", "sp")
    assert code == 0, err
    assert "budget over all workers: 0.5 full runs" in out
    code, out, _ = run_cli(capsys, "worker", "--study", "sp")
    assert "the study's budget (0.5 full runs) is used" in out


def test_a_worker_whose_data_is_missing_writes_no_study(capsys, tmp_path, monkeypatch) -> None:
    # `fedhpo worker --space` created the study, then failed to build the data
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(
        BASE.replace(
            "name: synthetic", f"name: csv\n  options: {{path: {tmp_path / 'no.csv'}}}"
        ).replace("  options: {alpha: 1.0, beta: 1.0, num_clients: 12}\n", "")
    )
    (tmp_path / "sp.yaml").write_text("base: base.yaml\nparams:\n" + LR_MU)
    code, _, err = run_cli(capsys, "worker", "--study", "w", "--space", "sp.yaml", "--trials", "1")
    assert code == 2 and "file not found" in err and err.count("\n") == 1
    assert not (tmp_path / "fedhpo.db").exists()


def test_a_worker_without_a_budget_for_a_new_study_writes_nothing(
    capsys, tmp_path, monkeypatch
) -> None:
    # it said "has no trial budget; give --trials N or --timeout S" after creating the study
    # (its base-config trial queued, no budget): the next worker then joined that study
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "sp.yaml").write_text("base: base.yaml\nfidelity: {rounds: 2}\nparams:\n" + LR_MU)
    args = ("worker", "--study", "w", "--space", "sp.yaml")
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and err.count("\n") == 1, err
    assert "study 'w' has no trial budget; give --trials N or --timeout S" in err
    assert not (tmp_path / "fedhpo.db").exists()
    code, _, err = run_cli(capsys, *args, "--storage", "no-url")  # what is wrong with it
    assert code == 2 and "cannot parse storage URL 'no-url'" in err
    # ... nor to a database that holds other studies
    code, _, err = run_cli(capsys, *args[:2], "other", *args[3:], "--trials", "1")
    assert code == 0, err
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "has no trial budget" in err
    assert optuna.get_all_study_names("sqlite:///fedhpo.db") == ["other"]


def test_the_first_worker_creates_the_study_from_a_space(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(BASE)
    space = tmp_path / "new.yaml"
    space.write_text("base: base.yaml\nfidelity: {rounds: 2}\nparams:\n" + LR_MU)
    code, _, err = run_cli(capsys, "worker", "--study", "w", "--space", str(space), "--trials", "2")
    assert code == 0, err
    assert len(_trials(tmp_path, "w")) == 2


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["worker", "--study", "nope"], "--space FILE"),
        (["worker", "--study", "x", "--heartbeat", "5", "--grace", "5"], "grace period"),
    ],
)
def test_worker_mistakes_exit_2(capsys, tmp_path, monkeypatch, argv, fragment) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and fragment in err


@pytest.mark.parametrize(
    ("options", "flag", "fragment"),
    [
        (["--base", "nonexist.yaml"], "--base", "applies only with --space"),
        (["--set", "client.lr=abc"], "--set", "applies only with --space"),
        (["--trials", "1"], "--trials", "study 'lm' records its own budget"),
        (["--timeout", "60"], "--timeout", "study 'lm' records its own budget"),
    ],
)
def test_a_worker_without_space_refuses_what_only_a_new_study_takes(
    capsys, tmp_path, monkeypatch, options, flag, fragment
) -> None:
    # `fedhpo worker --study lm --base nonexist.yaml --set client.lr=abc --trials 1` joined
    # the existing study and ran its trials, silently ignoring all three
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "lm.yaml").write_text("base: base.yaml\nfidelity: {rounds: 2}\nparams:\n" + LR_MU)
    code, _, err = run_cli(capsys, "tune", "--space", "lm.yaml", "--trials", "2", "--create-only")
    assert code == 0, err
    code, out, err = run_cli(capsys, "worker", "--study", "lm", *options)
    assert code == 2 and out == ""
    assert err.startswith(f"fedhpo: error: `{flag}`: {fragment}") and err.count("\n") == 1, err
    assert f"drop {flag}" in err
    assert [t.state for t in _trials(tmp_path, "lm")] == [TrialState.WAITING]  # nothing ran


def test_a_worker_gives_a_study_without_a_budget_its_trials(capsys, tmp_path) -> None:
    # a study made before budgets were recorded takes this worker's --trials, as it asks
    from fedhpo.space import load_space
    from fedhpo.tune._runner import TuneOptions, create_or_resume

    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "lm.yaml").write_text("base: base.yaml\nfidelity: {rounds: 2}\nparams:\n" + LR_MU)
    url = f"sqlite:///{tmp_path / 'fedhpo.db'}"
    create_or_resume(
        load_space(tmp_path / "lm.yaml"), TuneOptions(storage=url, study="lm", trials=None)
    )
    code, _, err = run_cli(capsys, "worker", "--study", "lm", "--storage", url)
    assert code == 2 and "has no trial budget; give --trials N" in err
    code, out, err = run_cli(capsys, "worker", "--study", "lm", "--storage", url, "--trials", "1")
    assert code == 0 and "ran 1 trial(s)" in out, err


def test_a_workers_set_errors_found_when_its_data_is_built_are_reported_as_set(
    capsys, tmp_path, monkeypatch
) -> None:
    # `worker --space s.yaml --set data.options.dim=0` said "`data.options.dim`: ..." alone
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "lm.yaml").write_text("base: base.yaml\nparams:\n" + LR_MU)
    code, _, err = run_cli(capsys, "worker", "--study", "lm", "--space", "lm.yaml", "--trials",
                           "1", "--set", "data.options.dim=0")  # fmt: skip
    assert code == 2
    assert err == "fedhpo: error: --set: `data.options.dim`: must be >= 1, got 0\n"
    assert not (tmp_path / "fedhpo.db").exists()
