"""``fedhpo report``: one study or --compare, the written path, clean errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from fedhpo.cli import report
from fedhpo.errors import StudyError


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fedhpo")
    report.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", *argv])
    return args.func(args)


def test_report_writes_the_default_folder(studies, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(["lr_mu", "--storage", studies.storage]) == 0
    assert capsys.readouterr().out.strip() == "wrote reports/lr_mu/index.html"
    assert (tmp_path / "reports" / "lr_mu" / "plotly.min.js").exists()


def test_compare_writes_to_out(studies, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cmp"
    assert run(["--compare", "lr_mu", "mo", "--storage", studies.storage, "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out / 'index.html'}"
    assert "lr_mu" in (out / "index.html").read_text()


def test_unknown_study_is_a_study_error(studies) -> None:
    with pytest.raises(StudyError, match="no study 'nope'.*lr_mu"):
        run(["nope", "--storage", studies.storage])
    with pytest.raises(StudyError, match="no study 'nope'"):
        run(["--compare", "lr_mu", "nope", "--storage", studies.storage])


@pytest.mark.parametrize("argv", [[], ["lr_mu", "--compare", "mo"]])
def test_study_xor_compare(studies, argv: list[str]) -> None:
    with pytest.raises(StudyError, match="--compare"):
        run([*argv, "--storage", studies.storage])


def test_compare_refuses_a_study_named_twice(studies, tmp_path: Path, capsys) -> None:
    # it drew the study's traces twice, one over the other
    from fedhpo.cli.main import main

    argv = ["report", "--compare", "lr_mu", "mo", "lr_mu", "--storage", studies.storage]
    assert main([*argv, "--out", str(tmp_path / "cmp")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert "'lr_mu' is named twice" in err
    assert not (tmp_path / "cmp").exists()


def test_the_report_hint_names_the_storage_it_was_read_from(studies, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    assert run(["lr_mu", "--storage", studies.storage, "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert f"fedhpo best lr_mu --storage {studies.storage} --out best.yaml" in page
