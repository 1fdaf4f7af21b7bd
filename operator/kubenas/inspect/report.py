"""`kubenas report`: one experiment as a self-contained HTML page plus its figures as PNG files.

This module imports matplotlib (through figures.py): import it only where a report is made.
The page embeds every figure as a data: URI and has no external reference (no CDN, no web font, no
script library), so it opens offline and can be mailed as one file; the PNGs are written next to it for
slides and papers. A small inline script replaces a figure the browser cannot decode by a visible
message and records how many figures it decoded in <body data-figures-loaded>.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from kubenas.inspect import analysis
from kubenas.inspect.figures import Figure, all_figures
from kubenas.inspect.rundata import ExperimentData

REPORT_FILE = "report.html"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f4f4f4; }
img { max-width: 100%; height: auto; display: block; }
.caption { color: #555; font-size: 0.9em; max-width: 60em; }
.note { color: #8a5a00; background: #fff6e0; padding: 0.4em 0.8em; display: inline-block; }
pre { margin: 0; white-space: pre-wrap; font-size: 0.95em; }
.scroll { max-height: 40em; overflow-y: auto; }
"""

_SCRIPT = """
window.addEventListener("load", function () {
  var loaded = 0;
  Array.prototype.forEach.call(document.querySelectorAll("img.figure"), function (img) {
    if (img.complete && img.naturalWidth > 0) { loaded += 1; return; }
    var note = document.createElement("p");
    note.className = "note";
    note.textContent = "This figure could not be displayed: " + img.alt;
    img.replaceWith(note);
  });
  document.body.dataset.figuresLoaded = String(loaded);
});
"""


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) >= 1000:
            return f"{int(value):,}"
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _cell(value: object) -> str:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return (
        f'<td class="num">{html.escape(_fmt(value))}</td>'
        if numeric
        else f"<td>{html.escape(_fmt(value))}</td>"
    )


def table(headings: Sequence[str], rows: Iterable[Sequence[object]], scroll: bool = False) -> str:
    """An HTML table of escaped values (numbers right-aligned, 4 significant digits); no heading row
    when `headings` is empty."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headings)
    thead = f"<thead><tr>{head}</tr></thead>" if headings else ""
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    text = f"<table>{thead}<tbody>{body}</tbody></table>"
    return f'<div class="scroll">{text}</div>' if scroll else text


def _figure_html(figure: Figure) -> str:
    parts = [f"<h2>{html.escape(figure.title)}</h2>"]
    if figure.path is None:
        parts.append(f'<p class="note">{html.escape(figure.note)}</p>')
        return "\n".join(parts)
    encoded = base64.b64encode(figure.path.read_bytes()).decode("ascii")
    parts.append(
        f'<img class="figure" id="{figure.name}" alt="{html.escape(figure.title)}" '
        f'src="data:image/png;base64,{encoded}">'
    )
    parts.append(f'<p class="caption">{html.escape(figure.caption)} ({html.escape(figure.path.name)})</p>')
    return "\n".join(parts)


def _summary_html(data: ExperimentData) -> str:
    out = [table([], analysis.summary(data).items())]
    best = data.status.best
    if best is not None:
        layers = best.candidate.architecture.layers
        architecture = (
            " > ".join(f"{layer.type}({layer.units}, {layer.activation})" for layer in layers)
            or "(no hidden layer)"
        )
        hp = best.candidate.hyperparameters.model_dump(by_alias=True, exclude_none=True, mode="json")
        out.append(f"<p><b>Best architecture</b>: {html.escape(architecture)}<br>")
        out.append(
            "<b>Hyperparameters</b>: "
            + html.escape(", ".join(f"{k}={_fmt(v)}" for k, v in hp.items()))
            + "</p>"
        )
        metrics = sorted(best.metrics.items())
        out.append(table(["validation metric", "value"], metrics))
        if best.test_metrics:
            out.append(table(["test metric", "value"], sorted(best.test_metrics.items())))
    return "\n".join(out)


def _trials_html(data: ExperimentData) -> str:
    rows = [
        (
            t.name,
            str(t.status.phase),
            t.own_epochs,
            len(t.epochs),
            t.status.objective_value,
            t.spec.start_from or "",
            t.status.message,
        )
        for t in data.trials
    ]
    headings = [
        "trial",
        "phase",
        "own epochs",
        "epochs",
        data.spec.objective.metric,
        "started from",
        "message",
    ]
    return table(headings, rows, scroll=True)


def _importance_html(result: analysis.Importance) -> str:
    if not result.values:
        return ""
    rows = sorted(result.values.items(), key=lambda kv: -kv[1])
    return table(["parameter", "importance"], rows)


def _pareto_html(data: ExperimentData) -> str:
    goals = analysis.pareto_goals(data)
    if not goals:
        return ""
    front = [p for p in analysis.pareto_points(data, goals) if p.front]
    size = data.status.pareto_front_size
    recorded = f" The experiment's status counts {size} non-dominated trials." if size is not None else ""
    rows = [(p.trial, *p.values) for p in sorted(front, key=lambda p: p.values[0])]
    return f"<p>{len(front)} non-dominated trials.{html.escape(recorded)}</p>" + table(
        ["trial", *(g.metric for g in goals)], rows
    )


def _lineage_html(data: ExperimentData) -> str:
    segments = analysis.lineage(data)
    if not segments:
        return ""
    rows = "".join(
        "<tr>"
        + _cell(s.trial)
        + _cell(s.parent or "")
        + _cell(f"{s.first_epoch}-{s.last_epoch}" if s.last_epoch >= s.first_epoch else "-")
        + _cell(s.value)
        + _cell(str(s.phase))
        + f"<td><pre>{html.escape(s.note)}</pre></td></tr>"
        for s in segments
    )
    heads = ["trial", "started from", "own epochs", data.spec.objective.metric, "phase", "note"]
    head = "".join(f"<th>{h}</th>" for h in heads)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>'


def _costs_html(data: ExperimentData) -> str:
    rows = analysis.costs(data)
    reported = [(h, k) for h, k in analysis.COST_METRICS if any(k in c.metrics for c in rows)]
    headings = ["trial", "phase", "own epochs", "training s", "wall s", *(h for h, _ in reported)]
    body = [
        (
            c.trial,
            str(c.phase),
            c.epochs,
            c.training_seconds,
            c.wall_seconds,
            *(c.metrics.get(k) for _, k in reported),
        )
        for c in rows
    ]
    missing = [h for h, k in analysis.COST_METRICS if (h, k) not in reported]
    note = (
        f'<p class="caption">Not reported by any trial: {html.escape(", ".join(missing))}.</p>'
        if missing
        else ""
    )
    return table(headings, body, scroll=True) + note


def render(data: ExperimentData, figures: Sequence[Figure], importances: analysis.Importance) -> str:
    """The page: summary, figures each followed by its table, the trials."""
    after: dict[str, str] = {
        "importance": _importance_html(importances),
        "pareto_front": _pareto_html(data),
        "lineage": _lineage_html(data),
        "costs": _costs_html(data),
    }
    sections = []
    for figure in figures:
        sections.append(_figure_html(figure) + after.get(figure.name, ""))
    title = f"kubenas report: {data.name}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style>
<script>{_SCRIPT}</script>
</head>
<body>
<h1>{html.escape(title)}</h1>
{_summary_html(data)}
{"".join(sections)}
<h2>Trials</h2>
{_trials_html(data)}
</body>
</html>
"""


def write_report(data: ExperimentData, out: Path) -> Path:
    """Draw every figure into `out` and write `out`/report.html; the page's path."""
    out.mkdir(parents=True, exist_ok=True)
    importances = analysis.importance(data)
    figures = all_figures(data, out, importances)
    page = out / REPORT_FILE
    page.write_text(render(data, figures, importances))
    return page
