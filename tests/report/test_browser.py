"""Reports open offline in headless Chromium: no JavaScript errors, every plot rendered."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fedhpo.report import write_report
from tests.report.conftest import HOSTILE

pytestmark = pytest.mark.browser

# Every figure the pruned-and-promoted study's report draws (a new section adds its id here).
PROMOTED_FIGURES = {
    "history", "curves", "importance", "parallel", "slices", "contour", "fidelity", "clients",
    "sim-time",
}  # fmt: skip

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--virtual-time-budget=10000",
]  # fmt: skip


def chromium() -> str:
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if not found:
        pytest.skip("chromium not installed: apt-get install chromium")
    return found


def dump_doms(indexes: dict[str, Path], tmp: Path) -> dict[str, str]:
    """Open every report from disk at once (file://) and return each rendered DOM."""
    exe = chromium()
    procs = {
        name: subprocess.Popen(
            [
                exe,
                *FLAGS,
                f"--user-data-dir={tmp / ('profile-' + name)}",
                "--dump-dom",
                index.resolve().as_uri(),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
        for name, index in indexes.items()
    }
    doms = {}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"chromium failed on {name}"
        doms[name] = out
    return doms


@pytest.fixture(scope="module")
def rendered(studies, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    """{name: (written page, rendered DOM)} for several reports and a broken one."""
    tmp = tmp_path_factory.mktemp("browser")
    indexes = {
        name: write_report(getattr(studies, name), tmp / name)
        for name in ("promoted", "multi", "failing", "hostile")
    }
    indexes["no_plotly"] = write_report(studies.promoted, tmp / "no_plotly")
    (tmp / "no_plotly" / "plotly.min.js").unlink()
    doms = dump_doms(indexes, tmp)
    return {n: (indexes[n].read_text(encoding="utf-8"), doms[n]) for n in indexes}


def js_errors(dom: str) -> str:
    match = re.search(r'<pre id="js-errors">(.*?)</pre>', dom, flags=re.S)
    assert match, "the error box is missing from the DOM"
    return match.group(1)


def figure_doms(page: str, dom: str) -> dict[str, str]:
    """Each figure div's rendered DOM, up to the next figure div."""
    ids = re.findall(r'<div id="(fig-[^"]+)" class="plotly-graph-div"', page)
    starts = [dom.index(f'id="{i}"') for i in ids]
    ends = [*starts[1:], len(dom)]
    return {i: dom[s:e] for i, s, e in zip(ids, starts, ends, strict=True)}


@pytest.mark.parametrize("name", ["promoted", "multi", "failing", "hostile"])
def test_report_renders_without_errors(rendered, name: str) -> None:
    page, dom = rendered[name]
    assert js_errors(dom) == ""
    figures = figure_doms(page, dom)
    assert figures or name == "failing"
    for fig_id, part in figures.items():
        assert 'class="main-svg"' in part, f"{fig_id} did not render"
        assert "js-plotly-plot" in part, f"{fig_id} is not a plotly plot"
    if name == "promoted":
        assert set(figures) == {f"fig-{id}" for id in PROMOTED_FIGURES}


def test_hostile_text_stays_text(rendered) -> None:
    _, dom = rendered["hostile"]
    assert HOSTILE not in dom  # no live <script> element from the database
    assert '<img src="x"' not in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom


def test_the_error_box_reports_a_missing_plotly(rendered) -> None:
    _, dom = rendered["no_plotly"]
    errors = js_errors(dom)
    assert "failed to load" in errors and "plotly.min.js" in errors
    assert "Plotly is not defined" in errors
