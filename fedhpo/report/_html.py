"""HTML assembly: escaped text, tables, sections with figure divs, and the page shell."""

from __future__ import annotations

import html
import shlex
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from fedhpo.report._data import HeaderData, LeaderboardData, TableData
from fedhpo.store import storage_flag

PLOTLY_JS = "plotly.min.js"
OTHERS_MAX_ROWS = 200
FIGURE_CONFIG = {"displaylogo": False, "responsive": True}

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #202124;
       margin: 0; background: #f6f7f9; }
main { max-width: 1200px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 1.6em; margin: 0.4em 0; word-break: break-all; }
h2 { font-size: 1.25em; margin: 0 0 0.5em; }
section { background: #fff; border: 1px solid #dadce0; border-radius: 8px;
          padding: 16px 20px; margin: 16px 0; }
nav a { margin-right: 1em; white-space: nowrap; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.facts dt { font-weight: 600; color: #5f6368; }
dl.facts dd { margin: 0; word-break: break-all; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border-bottom: 1px solid #e0e0e0; padding: 3px 8px; text-align: right; }
th { background: #f1f3f4; position: sticky; top: 0; }
td.text, th.text { text-align: left; }
tr.best td { background: #fff4e5; font-weight: 600; }
.scroll { overflow-x: auto; max-height: 640px; overflow-y: auto; }
.note { color: #5f6368; background: #f8f9fa; border-left: 4px solid #9aa0a6;
        padding: 8px 12px; margin: 8px 0; }
.warn { color: #7a4100; background: #fff4e5; border-left-color: #e8710a; }
pre { background: #f8f9fa; padding: 8px 12px; overflow-x: auto; font-size: 13px; }
details summary { cursor: pointer; margin: 6px 0; color: #1a73e8; }
#js-errors { color: #c5221f; background: #fce8e6; white-space: pre-wrap; }
#js-errors:empty { display: none; }
"""

# Runs before anything else: records script errors (and a plotly.js that failed to load) into
# <pre id="js-errors">, so a headless browser test, or a reader, can see them.
ERROR_TRAP = """
window.__reportErrors = [];
function __reportError(text) {
  window.__reportErrors.push(String(text));
  var box = document.getElementById("js-errors");
  if (box) { box.textContent = window.__reportErrors.join("\\n"); }
}
window.addEventListener("error", function (e) {
  var t = e.target;
  if (t && t !== window && (t.src || t.href)) { __reportError("failed to load " + (t.src || t.href)); return; }
  __reportError((e.message || "error") + " at " + (e.filename || "?") + ":" + (e.lineno || 0));
}, true);
window.addEventListener("unhandledrejection", function (e) { __reportError("unhandled rejection: " + e.reason); });
document.addEventListener("DOMContentLoaded", function () {
  if (!window.Plotly) { __reportError("plotly.js did not load (" + "PLOTLY_JS" + " missing?)"); }
  var box = document.getElementById("js-errors");
  if (box && window.__reportErrors.length) { box.textContent = window.__reportErrors.join("\\n"); }
});
""".replace("PLOTLY_JS", PLOTLY_JS)


@dataclass(frozen=True)
class Section:
    """One titled block of the page; ``body`` is already-escaped HTML."""

    id: str
    title: str
    body: str


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    """A table cell: short floats, '' for missing."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def note(text: str, warn: bool = False) -> str:
    """A grey (or orange) remark; ``text`` is escaped."""
    return f'<p class="note{" warn" if warn else ""}">{esc(text)}</p>'


def figure(fig: go.Figure, div_id: str) -> str:
    """A Plotly figure as a div plus its inline script; plotly.js itself is loaded once."""
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=FIGURE_CONFIG)


def table(data: TableData, highlight: int | None = None, max_rows: int | None = None) -> str:
    """A scrollable HTML table; the row whose ``trial`` equals ``highlight`` is marked."""
    rows = data.rows[:max_rows] if max_rows else data.rows
    trial_col = data.columns.index("trial") if "trial" in data.columns else None

    def cls(value: Any) -> str:
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        return "" if numeric else ' class="text"'

    head = "".join(f'<th class="text">{esc(c)}</th>' for c in data.columns)
    body = []
    for row in rows:
        best = trial_col is not None and highlight is not None and row[trial_col] == highlight
        cells = "".join(f"<td{cls(v)}>{esc(fmt(v))}</td>" for v in row)
        body.append(f"<tr{' class=best' if best else ''}>{cells}</tr>")
    more = ""
    if max_rows and len(data.rows) > max_rows:
        more = note(f"showing {max_rows} of {len(data.rows)} rows")
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>{more}"
    )


def facts(items: list[tuple[str, str]]) -> str:
    """A two-column list of (label, already-escaped value)."""
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items)
    return f'<dl class="facts">{rows}</dl>'


def _seconds(total: float) -> str:
    if total < 120:
        return f"{total:.1f} s"
    if total < 7200:
        return f"{total:.0f} s ({total / 60:.1f} min)"
    return f"{total:.0f} s ({total / 3600:.1f} h)"


def header_section(data: HeaderData) -> Section:
    """Study facts, with the base config and the space file folded away."""
    c = data.counts
    total = sum(c.values())
    counts = f"{total}: {c['complete']} complete, {c['pruned']} pruned, {c['failed']} failed"
    if c.get("running"):
        counts += f", {c['running']} running"
    objectives = ", ".join(f"{m} ({d})" for m, d in data.objectives)
    items = [
        ("study", esc(data.study)),
        ("objective" + ("s" if len(data.objectives) > 1 else ""), esc(objectives)),
        ("trials", esc(counts)),
        ("total wall time", esc(_seconds(data.total_wall_seconds) + " (sum over trials)")),
        ("space file", esc(data.space_file or "not recorded")),
    ]
    for name, settings in (("tuner", data.tuner), ("fidelity", data.fidelity)):
        text = ", ".join(f"{k} {v}" for k, v in settings.items() if v is not None)
        if text:
            items.append((name, esc(text)))
    items.append(("fedhpo version", esc(data.version or "not recorded")))
    body = facts(items)
    if c["complete"] == 0:
        reason = "no complete trial yet"
        if total:
            reason += "; the table of trials that did not complete says why each ended"
        body = note(f"This study has {reason}.", warn=True) + body
    if data.base_config:
        body += (
            "<details><summary>Base config (YAML, full fidelity)</summary>"
            f"<pre>{esc(data.base_config)}</pre></details>"
        )
    if data.space_text:
        body += f"<details><summary>Search-space file</summary><pre>{esc(data.space_text)}</pre></details>"
    return Section("summary", "Summary", body)


def leaderboard_section(data: LeaderboardData, study: str, storage: str | None = None) -> Section:
    """The leaderboard table, the best config's parameters, and the unfinished trials; the
    export command names ``storage``, the URL the study was read from."""
    if data.board.rows:
        body = f"<h3>{esc(data.title)}</h3>" + table(data.board, highlight=data.best_trial)
        if data.note:
            body += note(data.note)
    else:
        body = note("No complete trial: nothing to rank yet.", warn=True)
    if data.best_params:
        params = TableData(["parameter", "value"], [[k, v] for k, v in data.best_params.items()])
        body += f"<h3>Best config: trial {esc(data.best_trial)}</h3>{table(params)}"
        command = f"fedhpo best {shlex.quote(study)}{storage_flag(storage)} --out best.yaml"
        body += note(f"Export it at full fidelity with: {command}")
    if data.others.rows:
        body += "<h3>Trials that did not complete</h3>"
        body += table(data.others, max_rows=OTHERS_MAX_ROWS)
    return Section("leaderboard", "Leaderboard", body)


def figure_section(
    id: str, title: str, fig: go.Figure | None, intro: str = "", missing: str = ""
) -> Section:
    """A figure with a short explanation, or a note saying why there is none."""
    body = note(intro) if intro and fig is not None else ""
    body += figure(fig, f"fig-{id}") if fig is not None else note(missing)
    return Section(id, title, body)


def page(title: str, sections: list[Section], subtitle: str = "") -> str:
    """The whole document: error trap, local plotly.js, navigation, sections."""
    nav = " ".join(f'<a href="#{s.id}">{esc(s.title)}</a>' for s in sections)
    blocks = "\n".join(
        f'<section id="{s.id}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{CSS}</style>
<script>{ERROR_TRAP}</script>
<script src="{PLOTLY_JS}"></script>
</head>
<body>
<main>
<pre id="js-errors"></pre>
<h1>{esc(title)}</h1>
<p>{esc(subtitle)}</p>
<nav>{nav}</nav>
{blocks}
</main>
</body>
</html>
"""
