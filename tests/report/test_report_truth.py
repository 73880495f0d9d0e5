"""The report says what the study did: the budget it ran with, a leaderboard title that
matches its rows, hints that reach the study's database, curves of the data there is, and
comparison traces that show up."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from fedhpo.report import comparison_data, curves_data, header_data, leaderboard_data
from fedhpo.report._figures import comparison_figures
from fedhpo.report._html import header_section
from fedhpo.report._report import report_html, study_sections
from fedhpo.store import records as rec
from fedhpo.tune import tune
from tests.helpers import BASE, LR_MU, climbing_run

QUIET = {"log": lambda _: None}


def _space(
    folder: Path, tuner: str = "{sampler: random, pruner: none}", objective: str = ""
) -> Path:
    (folder / "base.yaml").write_text(BASE)
    path = folder / "lrmu.yaml"
    path.write_text(f"base: base.yaml\n{objective}tuner: {tuner}\nparams:\n{LR_MU}")
    return path


def _facts(study: optuna.Study) -> str:
    body = header_section(header_data(study)).body
    return body[: body.index("</dl>")]


@pytest.fixture(scope="module")
def lead(tmp_path_factory: pytest.TempPathFactory) -> optuna.Study:
    """Budget 2.5: trial 2, stopped by the budget at round 6 while ahead, leads."""
    folder = tmp_path_factory.mktemp("lead")
    storage = f"sqlite:///{folder / 'lead.db'}"
    return tune(
        str(_space(folder)), storage=storage, study="lead", budget=2.5,
        run=climbing_run([0.5, 0.6, 0.9]), **QUIET,
    )  # fmt: skip


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> optuna.Study:
    """Trials 3, no compute budget: 3 complete trials."""
    folder = tmp_path_factory.mktemp("three")
    return tune(
        str(_space(folder)), storage=f"sqlite:///{folder / 's.db'}", study="t3", trials=3,
        run=climbing_run([0.5, 0.6, 0.7]), **QUIET,
    )  # fmt: skip


def test_the_tuner_line_shows_the_budget_the_study_ran_with(lead) -> None:
    # it showed the space's default (budget 10.0), not the --budget 2.5 of the run
    tuner = header_data(lead).tuner
    assert tuner["budget"] == 2.5 and tuner.get("trials") is None
    assert "<dt>tuner</dt><dd>sampler random, pruner none, budget 2.5, seed 0" in _facts(lead)


def test_the_tuner_line_shows_the_trials_the_study_ran_with(three) -> None:
    # --trials 3 means no compute budget; it showed "budget 10.0"
    study = three
    tuner = header_data(study).tuner
    assert tuner["trials"] == 3 and tuner.get("budget") is None
    assert "<dt>tuner</dt><dd>sampler random, pruner none, trials 3, seed 0" in _facts(study)
    assert "budget" not in _facts(study)


def test_a_multi_objective_study_shows_its_trials_not_the_default_30(tmp_path) -> None:
    objective = (
        "objective: [{metric: val_accuracy, direction: maximize}, "
        "{metric: val_loss, direction: minimize}]\n"
    )
    study = tune(
        str(_space(tmp_path, "{sampler: random}", objective)),
        storage=f"sqlite:///{tmp_path / 'm.db'}", study="mo", trials=2,
        run=climbing_run([0.5, 0.6]), **QUIET,
    )  # fmt: skip
    assert header_data(study).tuner["trials"] == 2


def test_a_study_without_a_recorded_budget_claims_none() -> None:
    study = optuna.create_study()
    study.set_user_attr(rec.SPACE, {"tuner": {"sampler": "tpe", "budget": 10.0, "trials": 30}})
    assert header_data(study).tuner == {"sampler": "tpe"}


def test_a_create_only_study_shows_its_budget_in_client_steps() -> None:
    # workers record no compute summary: the budget is the shared one, in client steps
    study = optuna.create_study()
    study.set_user_attr(rec.SPACE, {"tuner": {"sampler": "tpe", "budget": 10.0}})
    study.set_user_attr(rec.BUDGET, {"trials": None, "timeout": 60.0, "steps": 2775})
    assert header_data(study).tuner == {
        "sampler": "tpe",
        "budget steps": 2775,
        "timeout": 60.0,
    }


def test_the_leaderboard_title_admits_a_leader_that_did_not_finish(lead) -> None:
    data = leaderboard_data(lead)
    first = dict(zip(data.board.columns, data.board.rows[0], strict=True))
    assert first["trial"] == 2 and first["state"] == "pruned"
    assert "complete" not in data.title
    assert data.title == f"Top {len(data.board.rows)} trials"
    assert data.note is not None
    assert "Trial 2 did not finish: the budget stopped it at round 6" in data.note
    assert "Trial 2 did not finish" in report_html(lead)


def test_the_leaderboard_title_admits_a_base_config_ranked_by_its_re_runs(tmp_path) -> None:
    # under the default pruner the base config stops at the first rung; promotion re-runs it
    study = tune(
        str(_space(tmp_path, "{sampler: random}")), storage=f"sqlite:///{tmp_path / 'p.db'}",
        study="p", trials=4, promote_top=1, seeds=2,
        run=climbing_run([0.5, 0.6, 0.7, 0.8] + [0.9] * 6), **QUIET,
    )  # fmt: skip
    data = leaderboard_data(study)
    states = [row[data.board.columns.index("state")] for row in data.board.rows]
    assert "pruned" in states and data.title == "Top 4 trials"
    assert data.note == (
        "Trial 0 did not finish its tuning run (pruned); it is ranked by its full-fidelity re-runs."
    )


def test_an_all_complete_leaderboard_keeps_its_title(three) -> None:
    study = three
    data = leaderboard_data(study)
    assert data.title == "Top 3 complete trials" and data.note is None


@pytest.mark.parametrize(
    ("storage", "flag"),
    [
        (None, ""),
        ("sqlite:///fedhpo.db", ""),
        ("sqlite:///runs/my studies.db", " --storage 'sqlite:///runs/my studies.db'"),
        ("postgresql://u:secret@db/fl", " --storage 'postgresql://u:***@db/fl'"),
    ],
)
def test_the_export_hint_names_the_storage(lead, storage: str | None, flag: str) -> None:
    # "fedhpo best lead --out best.yaml" failed when the study was not in ./fedhpo.db
    page = report_html(lead, storage=storage)
    assert f"fedhpo best lead{flag} --out best.yaml" in page.replace("&#x27;", "'")
    assert "secret" not in page


def _tta_study() -> optuna.Study:
    """A time_to_accuracy study whose trials were all pruned after 6 rounds."""
    study = optuna.create_study(direction="minimize")
    study.set_user_attr(rec.OBJECTIVES, [{"metric": "time_to_accuracy", "direction": "minimize"}])
    for i in range(3):
        rounds = list(range(1, 7))
        curves = {
            "round": rounds,
            "val_accuracy": [0.1 * r + 0.01 * i for r in rounds],
            "sim_seconds": [2.0 * r for r in rounds],
        }
        study.add_trial(
            create_trial(
                state=TrialState.PRUNED,
                params={"client.lr": 0.1 * (i + 1)},
                distributions={"client.lr": FloatDistribution(0.01, 1.0)},
                user_attrs={rec.CURVES: curves, rec.STATUS_REASON: "pruned at round 6"},
            )
        )
    return study


def test_curves_of_a_time_to_accuracy_study_show_validation_accuracy() -> None:
    # "No trial reported any round" while the simulated-time figure plotted 6 rounds each
    data = curves_data(_tta_study())
    assert data.metric == "val_accuracy"
    assert [(c.trial, c.steps, c.pruned) for c in data.curves] == [
        (i, [1, 2, 3, 4, 5, 6], True) for i in range(3)
    ]
    assert data.curves[1].values == pytest.approx([0.1 * r + 0.01 for r in range(1, 7)])
    curves = next(s for s in study_sections(_tta_study()) if s.id == "curves")
    assert "No trial reported any round" not in curves.body
    assert "val_accuracy at each evaluation round" in curves.body


def _study_of(name: str, values: list[float | None]) -> optuna.Study:
    """Trials with these values, in order (None: a failed trial)."""
    study = optuna.create_study(study_name=name, direction="maximize")
    for v in values:
        study.add_trial(
            create_trial(
                state=TrialState.FAIL if v is None else TrialState.COMPLETE,
                value=v,
                params={"x": 0.5},
                distributions={"x": FloatDistribution(0.0, 1.0)},
                user_attrs={rec.WALL_SECONDS: 1.0},
            )
        )
    return study


def test_a_one_point_comparison_series_is_drawn_with_a_marker() -> None:
    # a one-point "lines" trace draws nothing: the study was invisible
    # (and so was one whose only complete trial came last: one point after the gaps)
    studies = [_study_of("a", [0.1, 0.3, 0.2]), _study_of("one", [0.4])]
    studies.append(_study_of("late", [None, None, 0.5]))
    for fig in comparison_figures(comparison_data(studies)):
        modes = {t.name.split(" ")[0]: t.mode for t in fig.data}
        assert "markers" in modes["one"] and "markers" in modes["late"]
        assert modes["a"] == "lines"
