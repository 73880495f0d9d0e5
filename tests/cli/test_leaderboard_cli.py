"""``fedhpo leaderboard`` as data (``--format csv|json``, with ``--all``) and the hints of
``fedhpo best`` that point at it."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from fedhpo.cli.main import main
from fedhpo.store import records as rec
from fedhpo.tune import tune
from tests.helpers import BASE, LR_MU, climbing_run


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Study ``lead``: budget 3.5, trial 2 diverged (pruned), trial 3 stopped by the budget
    at round 6 while ahead (it leads); study ``promoted``: 3 trials, the best and the base
    config re-run with 2 seeds."""
    folder = tmp_path_factory.mktemp("boards")
    (folder / "base.yaml").write_text(BASE)
    space = folder / "lrmu.yaml"
    space.write_text("base: base.yaml\ntuner: {sampler: random, pruner: none}\nparams:\n" + LR_MU)
    url = f"sqlite:///{folder / 'boards.db'}"
    quiet = {"storage": url, "log": lambda _: None}
    tops = [0.5, 0.6, math.nan, 0.9]
    tune(str(space), study="lead", budget=3.5, run=climbing_run(tops), **quiet)
    tops = [0.5, 0.6, 0.7] + [0.7] * 6
    tune(str(space), study="promoted", trials=3, promote_top=1, seeds=2, run=climbing_run(tops),
         **quiet)  # fmt: skip
    return url


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_all_lists_the_trials_that_did_not_complete_as_csv(capsys, storage) -> None:
    # --all was ignored by csv and json: only the ranked trials came out
    code, out, err = run_cli(capsys, "leaderboard", "lead", "--storage", storage, "--format", "csv")
    assert code == 0, err
    ranked = _csv(out)
    code, out, err = run_cli(
        capsys, "leaderboard", "lead", "--storage", storage, "--format", "csv", "--all"
    )
    assert code == 0, err
    rows = _csv(out)
    study = optuna.load_study(study_name="lead", storage=storage)
    assert sorted(int(r["trial"]) for r in rows) == [t.number for t in study.trials]
    assert len(rows) > len(ranked)
    # the ranked trials first, as without --all; then the others, unranked, with their reasons
    assert [r["trial"] for r in rows[: len(ranked)]] == [r["trial"] for r in ranked]
    others = rows[len(ranked) :]
    assert others and all(r["rank"] == "" and r["state"] == "pruned" for r in others)
    reasons = {t.number: t.user_attrs.get(rec.STATUS_REASON) for t in study.trials}
    assert all(r["reason"] == reasons[int(r["trial"])] for r in others)
    # the pruned leader keeps its reason too
    assert rows[0]["trial"] == "3" and rows[0]["reason"] == reasons[3]


def test_all_lists_the_trials_that_did_not_complete_as_json(capsys, storage) -> None:
    code, out, err = run_cli(
        capsys, "leaderboard", "lead", "--storage", storage, "--format", "json", "--all"
    )
    assert code == 0, err
    rows = json.loads(out)
    study = optuna.load_study(study_name="lead", storage=storage)
    assert sorted(r["trial"] for r in rows) == [t.number for t in study.trials]
    states = {r["trial"]: (r["state"], r["rank"]) for r in rows}
    assert states[2] == ("pruned", None) and states[3] == ("pruned", 1)


def test_counts_and_rounds_are_integers_in_csv_and_json(capsys, storage) -> None:
    # they printed as 6.0 and 2.0
    argv = ("leaderboard", "lead", "--storage", storage, "--all", "--format")
    lead = json.loads(run_cli(capsys, *argv, "json")[1])
    assert lead[0]["ahead_at_round"] == 6 and isinstance(lead[0]["ahead_at_round"], int)
    assert all(isinstance(r["rank"], int) for r in lead if r["rank"] is not None)
    assert _csv(run_cli(capsys, *argv, "csv")[1])[0]["ahead_at_round"] == "6"
    argv = ("leaderboard", "promoted", "--storage", storage, "--format")
    rows = json.loads(run_cli(capsys, *argv, "json")[1])
    seeds = [r["promoted_seeds"] for r in rows]
    assert seeds[:2] == [2, 2] and all(isinstance(s, int) for s in seeds[:2])
    assert all(s is None for s in seeds[2:])
    assert [r["promoted_seeds"] for r in _csv(run_cli(capsys, *argv, "csv")[1])][:2] == ["2", "2"]


def _no_complete_trial(storage: str | None = None) -> optuna.Study:
    """A fedhpo study ``tta`` whose one trial was pruned: nothing to export."""
    study = optuna.create_study(storage=storage, study_name="tta")
    study.set_user_attr(rec.BASE_CONFIG, {"client": {"lr": 0.05}})
    study.add_trial(
        create_trial(
            state=TrialState.PRUNED,
            params={"client.lr": 0.1},
            distributions={"client.lr": FloatDistribution(0.01, 1.0)},
            user_attrs={rec.STATUS_REASON: "did not reach federation.target_accuracy"},
        )
    )
    return study


def test_best_points_at_the_leaderboard_in_the_same_database(capsys, tmp_path: Path) -> None:
    # "`fedhpo leaderboard tta --all` lists every reason" looked in ./fedhpo.db, not here
    url = f"sqlite:///{tmp_path / 'tta.db'}"
    _no_complete_trial(url)
    code, _, err = run_cli(capsys, "best", "tta", "--storage", url)
    assert code == 2 and err.count("\n") == 1
    assert f"`fedhpo leaderboard tta --storage {url} --all` lists every reason" in err
    code, _, err = run_cli(capsys, "best", "tta", "--storage", url, "--trial", "0")
    assert code == 2 and f"`fedhpo leaderboard tta --storage {url}` lists the ones" in err


def test_best_masks_the_password_in_its_hint(capsys, monkeypatch) -> None:
    from fedhpo.cli import best

    study = _no_complete_trial()
    monkeypatch.setattr(best, "load_study", lambda *_: study)
    code, _, err = run_cli(capsys, "best", "tta", "--storage", "postgresql://u:secret@db/fl")
    assert code == 2 and "secret" not in err
    assert "`fedhpo leaderboard tta --storage 'postgresql://u:***@db/fl' --all`" in err
    assert "`fedhpo leaderboard tta --storage 'postgresql://u:***@db/fl' --all`" in err
