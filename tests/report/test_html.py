"""Report pages: every section, local plotly.js only, escaped database text, safe folders."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fedhpo.report import (
    default_comparison_dir,
    default_out_dir,
    report_html,
    safe_folder_name,
    write_comparison,
    write_report,
)
from tests.report.conftest import HOSTILE, HOSTILE_PARAM, HOSTILE_REASON

SINGLE = ["summary", "leaderboard", "history", "curves", "sim-time", "importance", "parallel",
          "slices", "contour", "fidelity", "clients"]  # fmt: skip


def sections(page: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)">', page)


def figure_ids(page: str) -> list[str]:
    return re.findall(r'<div id="(fig-[^"]+)" class="plotly-graph-div"', page)


def script_srcs(page: str) -> list[str]:
    return re.findall(r"<script[^>]*\bsrc=[\"']?([^\"' >]+)", page, flags=re.I)


def test_report_has_every_section_and_a_figure_in_each(studies, tmp_path: Path) -> None:
    index = write_report(studies.promoted, tmp_path / "r")
    assert index == tmp_path / "r" / "index.html"
    page = index.read_text(encoding="utf-8")
    assert sections(page) == SINGLE
    assert figure_ids(page) == [f"fig-{s}" for s in SINGLE[2:]]
    assert "Spearman rank correlation" in page
    assert "Best config: trial" in page and "pruned at round" in page


def test_plotly_is_local_and_nothing_is_fetched(studies, tmp_path: Path) -> None:
    index = write_report(studies.promoted, tmp_path)
    page = index.read_text(encoding="utf-8")
    assert script_srcs(page) == ["plotly.min.js"]
    js = tmp_path / "plotly.min.js"
    assert js.stat().st_size > 1_000_000 and b"Plotly" in js.read_bytes()[:10_000]
    assert "cdn" not in page.lower() and "https://" not in page and "http://" not in page
    assert '<pre id="js-errors"></pre>' in page
    mtime = js.stat().st_mtime_ns
    write_report(studies.promoted, tmp_path)  # plotly.js is copied once
    assert js.stat().st_mtime_ns == mtime


def test_multi_objective_report_shows_the_pareto_front(studies, tmp_path: Path) -> None:
    page = write_report(studies.multi, tmp_path).read_text(encoding="utf-8")
    assert sections(page)[:3] == ["summary", "leaderboard", "pareto"]
    assert "fig-pareto" in figure_ids(page) and "fidelity" not in sections(page)
    assert "Pareto front" in page


@pytest.mark.parametrize("which", ["failing", "empty"])
def test_no_complete_trial_gives_a_report_that_says_so(studies, which, tmp_path: Path) -> None:
    page = write_report(getattr(studies, which), tmp_path).read_text(encoding="utf-8")
    assert "This study has no complete trial yet" in page
    assert "No complete trial yet." in page and "No promotion ran" in page
    # simulated-time curves only where trials recorded simulated time
    assert [s for s in sections(page) if s != "sim-time"] == [s for s in SINGLE if s != "sim-time"]
    if which == "failing":
        assert "boom 0" in page and "fig-curves" in figure_ids(page)  # the pruned curve
    else:
        assert figure_ids(page) == []


def test_database_text_is_escaped(studies, tmp_path: Path) -> None:
    page = write_report(studies.hostile, tmp_path).read_text(encoding="utf-8")
    for text in (HOSTILE, HOSTILE_PARAM, HOSTILE_REASON):
        assert text not in page
    assert html.escape(HOSTILE) in page  # the title, the study name, the base config
    assert html.escape(HOSTILE_PARAM) in page  # the leaderboard column
    assert html.escape(HOSTILE_REASON) in page  # the failed trial's reason
    assert page.count("<script") == page.count("</script>")
    assert script_srcs(page) == ["plotly.min.js"]
    # figure JSON cannot close its <script>: plotly writes < and / as \u003c and \u002f;
    # Plotly's pseudo-HTML labels get entities (parcoords ticks are plain text anyway)
    assert "&lt;script&gt;alert(1)&lt;\\u002fscript&gt;" in page


def test_hostile_comparison_is_escaped(studies, tmp_path: Path) -> None:
    page = write_comparison([studies.hostile, studies.promoted], tmp_path).read_text()
    assert HOSTILE not in page and html.escape(HOSTILE) in page
    assert sections(page) == ["studies", "by-trials", "by-time"]
    assert "different objectives" in page


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("../../etc", "etc"),
        ("/etc/passwd", "etc-passwd"),
        ("..", "study"),
        ("", "study"),
        (HOSTILE, "script-alert-1-script"),
        ("a/../../b", "a-.-.-b"),
        ("lr_mu.v2", "lr_mu.v2"),
        ("C:\\Windows", "C-Windows"),
        ("x" * 300, "x" * 80),
    ],
)
def test_safe_folder_name(name: str, slug: str) -> None:
    assert safe_folder_name(name) == slug
    assert ".." not in slug and "/" not in slug and "\\" not in slug


def test_no_study_name_writes_outside_the_reports_folder(
    studies, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ["../../etc", "/tmp/x", "..", HOSTILE]:
        out = default_out_dir(name)
        assert out.parent == Path("reports") and out.resolve().is_relative_to(tmp_path / "reports")
    index = write_report(studies.hostile)  # the default folder from the hostile name
    assert index == Path("reports") / "script-alert-1-script" / "index.html"
    written = {p for p in tmp_path.rglob("*") if p.is_file()}
    assert written == {tmp_path / index, tmp_path / index.parent / "plotly.min.js"}
    compare = default_comparison_dir(["../a", "../../b"])
    assert compare == Path("reports") / "compare-a-b"  # each name made safe on its own


def test_report_html_is_deterministic(studies) -> None:
    assert report_html(studies.promoted) == report_html(studies.promoted)


def test_report_layer_reads_only_the_store() -> None:
    code = "import sys, fedhpo.report; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    for banned in ("fedhpo.sim", "fedhpo.tune", "fedhpo.space", "fedhpo.cli", "torch"):
        assert not {m for m in loaded if m == banned or m.startswith(banned + ".")}, banned
