"""Paths that cannot be written or opened as asked: one line naming the flag and the path,
exit 2, and no work done first (a full run that cannot save its result is not started)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import fedhpo.runs
from fedhpo.cli.main import main
from tests.helpers import BASE, LR_MU


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err and err.count("\n") <= 1, err
    return code, out + err


@pytest.fixture
def study(capsys, tmp_path: Path, monkeypatch) -> str:
    """A finished two-trial study in ``tmp_path/s.db``; its storage URL."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(BASE.replace("rounds: 12", "rounds: 2"))
    (tmp_path / "space.yaml").write_text(
        "base: base.yaml\ntuner: {sampler: random, pruner: none, trials: 2}\nparams:\n" + LR_MU
    )
    storage = f"sqlite:///{tmp_path / 's.db'}"
    code, text = _cli(capsys, "tune", "--space", "space.yaml", "--study", "s", "--storage", storage)
    assert code == 0, text
    return storage


def test_run_into_a_file_fails_before_running(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "taken").write_text("not a folder\n")

    def no_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the run started although its output folder cannot be made")

    monkeypatch.setattr(fedhpo.runs, "run_simulation", no_run)
    for out in ("taken", "taken/sub"):
        code, text = _cli(capsys, "run", "base.yaml", "--out", out)
        assert code == 2 and "`--out`" in text and "'taken' is a file" in text, text
    assert (tmp_path / "taken").read_text() == "not a folder\n"


def test_report_into_a_file_is_exit_2(capsys, study: str, tmp_path: Path) -> None:
    (tmp_path / "taken.html").write_text("mine\n")
    code, text = _cli(capsys, "report", "s", "--storage", study, "--out", "taken.html")
    assert code == 2 and "`--out`" in text and "'taken.html' is a file" in text, text
    assert (tmp_path / "taken.html").read_text() == "mine\n"


def test_best_into_a_folder_is_exit_2_and_suggests_a_file(capsys, study, tmp_path) -> None:
    (tmp_path / "configs").mkdir()
    code, text = _cli(capsys, "best", "s", "--storage", study, "--out", "configs")
    assert code == 2 and "`--out`" in text and "'configs' is a folder" in text, text
    assert str(Path("configs") / "best.yaml") in text
    assert list((tmp_path / "configs").iterdir()) == []


@pytest.mark.parametrize(
    "command", [["studies"], ["leaderboard", "s"], ["tune", "--space", "space.yaml"]]
)
def test_storage_that_is_not_a_database_is_exit_2(capsys, study, tmp_path, command) -> None:
    (tmp_path / "notes.txt").write_text("not a database, but a user's notes\n" * 100)
    code, text = _cli(capsys, *command, "--storage", f"sqlite:///{tmp_path / 'notes.txt'}")
    assert code == 2 and "`--storage`" in text and "is not a SQLite database" in text, text
    assert (tmp_path / "notes.txt").read_text().startswith("not a database")


@pytest.mark.parametrize("command", [["studies"], ["tune", "--space", "space.yaml"]])
def test_storage_that_is_a_folder_is_exit_2(capsys, study, tmp_path, command) -> None:
    code, text = _cli(capsys, *command, "--storage", f"sqlite:///{tmp_path}")
    assert code == 2 and "`--storage`" in text and "is a folder" in text, text
    assert str(tmp_path / "fedhpo.db") in text


def test_the_study_database_is_still_a_database(study: str, tmp_path: Path) -> None:
    # the checks above must not have touched the real one
    with sqlite3.connect(tmp_path / "s.db") as conn:
        assert conn.execute("select count(*) from studies").fetchone()[0] == 1


@pytest.mark.parametrize("flag", ["--out", "--cache"])
def test_quality_bench_into_a_file_fails_before_any_run(capsys, tmp_path, monkeypatch, flag):
    # the grid behind it takes an hour: a path it cannot write must stop it first
    import fedhpo.bench.quality

    def no_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the benchmark started although it cannot write its output")

    monkeypatch.setattr(fedhpo.bench.quality, "run_quality", no_run)
    (tmp_path / "taken").write_text("mine\n")
    argv = ["bench", "--workload", "quality", "--problems", "lr_mu", flag, str(tmp_path / "taken")]
    code, text = _cli(capsys, *argv)
    assert code == 2 and f"`{flag}`" in text and "is a file" in text, text
