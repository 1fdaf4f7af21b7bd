"""The report's figures: one function per figure, each drawing an ExperimentData into a PNG.

Drawn with matplotlib's object API (matplotlib.figure.Figure, rendered by Agg): no pyplot, so no global
state, no backend selection and no display is involved. Each function returns a Figure naming its file,
or a Figure with a note and no file when the experiment has nothing to show there (e.g. no Pareto front
for a single objective). This module imports matplotlib: import it only where a report is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure as MplFigure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from kubenas.api.status import TrialPhase
from kubenas.inspect import analysis
from kubenas.inspect.rundata import ExperimentData

DPI = 100
PHASE_COLORS: dict[TrialPhase, str] = {
    TrialPhase.SUCCEEDED: "#1f77b4",
    TrialPhase.STOPPED: "#7f7f7f",
    TrialPhase.PAUSED: "#ff7f0e",
    TrialPhase.FAILED: "#d62728",
    TrialPhase.RUNNING: "#2ca02c",
    TrialPhase.PENDING: "#bcbd22",
}
MARK_STYLES: dict[str, tuple[str, str]] = {  # kind -> (marker, colour)
    "promoted": ("^", "#2ca02c"),
    "continued": ("D", "#9467bd"),
    "paused": ("s", "#ff7f0e"),
    "stopped": ("x", "#555555"),
    "succeeded": ("o", "#1f77b4"),
    "failed": ("X", "#d62728"),
}


@dataclass(frozen=True)
class Figure:
    """A figure of the report: its file (None when skipped), title, caption, and why it was skipped."""

    name: str
    title: str
    caption: str
    path: Path | None
    note: str = ""


def _save(fig: MplFigure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    return path


def _objective_cmap(data: ExperimentData) -> Colormap:
    """viridis with the better end bright, whichever way the objective goes."""
    name = "viridis" if data.spec.objective.sign > 0 else "viridis_r"
    return matplotlib.colormaps[name]


def _label(data: ExperimentData) -> str:
    goal = data.spec.objective
    return f"{goal.metric} ({'higher' if goal.sign > 0 else 'lower'} is better)"


def best_so_far(data: ExperimentData, out: Path) -> Figure:
    title = "Best objective so far"
    progress = analysis.best_so_far(data)
    name = "best_so_far"
    if not any(p.value is not None for p in progress):
        return Figure(name, title, "", None, "no trial has reported an objective value yet")
    fig = MplFigure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    timed = [p for p in progress if p.seconds is not None]
    panels: list[tuple[Axes, str, list[tuple[float, analysis.Progress]]]] = [
        (axes[0], "epochs spent (all trials, in completion order)", [(p.epochs_spent, p) for p in progress]),
        (axes[1], "wall time since the experiment started (s)", [(p.seconds or 0.0, p) for p in timed]),
    ]
    for ax, xlabel, points in panels:
        scored = [(x, p.value) for x, p in points if p.value is not None]
        ax.scatter([x for x, _ in scored], [v for _, v in scored], s=14, color="#999999", label="trial")
        best = [(x, p.best) for x, p in points if p.best is not None]
        if best:
            ax.step([x for x, _ in best], [b for _, b in best], where="post", color="#d62728", label="best")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(_label(data))
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    caption = (
        "Each dot is a trial's objective when it completed (or paused); the red steps are the best so "
        "far, against the epochs all trials had trained by then and against wall time. A trial still "
        "paused when the experiment ended (ASHA, PBT) is stopped then, and counts at that time."
    )
    return Figure(name, title, caption, _save(fig, out / f"{name}.png"))


def learning_curves(data: ExperimentData, out: Path) -> Figure:
    title = "Learning curves"
    name = "learning_curves"
    metric = data.spec.objective.metric
    curves = [(t, analysis.metric_curve(t, metric)) for t in data.trials]
    if not any(points for _, points in curves):
        return Figure(name, title, "", None, f"no trial has written a per-epoch {metric} yet")
    fig = MplFigure(figsize=(11, 5), layout="constrained")
    ax = fig.subplots()
    alpha = 0.8 if len(curves) <= 20 else 0.45
    all_rungs: set[int] = set()
    lines: list[list[tuple[int, float]]] = []
    line_colors: list[str] = []
    dots: dict[str, list[tuple[int, float]]] = {}  # one-epoch curves, by colour
    marked: dict[str, list[tuple[int, float]]] = {kind: [] for kind in MARK_STYLES}
    continued = analysis.continued_trials(data)
    for trial, points in curves:
        own = points[trial.inherited_epochs :]
        color = PHASE_COLORS[trial.status.phase]
        if trial.inherited_epochs and own:  # its first epoch starts from the checkpoint's point
            own = [points[trial.inherited_epochs - 1], *own]
        if len(own) > 1:
            lines.append(own)
            line_colors.append(color)
        elif own:
            dots.setdefault(color, []).extend(own)
        values = dict(points)
        all_rungs.update(analysis.rungs(data, trial))
        for mark in analysis.marks(data, trial, continued):
            if mark.epoch in values:
                marked[mark.kind].append((mark.epoch, values[mark.epoch]))
    # One collection per kind of artist: hundreds of trials draw in one call each, not one per trial.
    ax.add_collection(LineCollection(lines, colors=line_colors, alpha=alpha, linewidths=1.0))
    for color, xy in dots.items():
        ax.scatter([x for x, _ in xy], [y for _, y in xy], color=color, alpha=alpha, s=6)
    for kind, xy in marked.items():
        if xy:
            marker, mark_color = MARK_STYLES[kind]
            ax.scatter(
                [x for x, _ in xy], [y for _, y in xy], marker=marker, color=mark_color, s=28, zorder=3
            )
    ax.autoscale_view()
    for rung in sorted(all_rungs):
        ax.axvline(rung, color="#2ca02c", ls="--", lw=0.8, alpha=0.6)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(_label(data))
    ax.grid(alpha=0.3)
    phases = sorted({t.status.phase for t, points in curves if points}, key=list(TrialPhase).index)
    handles = [Line2D([], [], color=PHASE_COLORS[p], label=str(p)) for p in phases]
    kinds = [kind for kind, xy in marked.items() if xy]
    handles += [
        Line2D([], [], ls="", marker=MARK_STYLES[k][0], color=MARK_STYLES[k][1], label=k) for k in kinds
    ]
    if all_rungs:
        handles.append(Line2D([], [], color="#2ca02c", ls="--", label="ASHA rung"))
    ax.legend(handles=handles, loc="lower right", fontsize="small", ncols=2)
    caption = (
        f"Validation {metric} after each epoch of each trial, coloured by the trial's phase; markers show "
        "where a trial was promoted past an ASHA rung (dashed lines), paused, stopped, failed, "
        "finished, or had its checkpoint continued by another trial. A trial continuing another's "
        "checkpoint (PBT, MIHA) starts from that trial's point."
    )
    return Figure(name, title, caption, _save(fig, out / f"{name}.png"))


def _axis_position(column: analysis.Column, value: object) -> float | None:
    """Where a value sits on its parallel axis, in [0, 1]; None when the parameter is inactive."""
    if value is None:
        return None
    if column.choices is not None:
        n = len(column.choices)
        return column.choices.index(value) / (n - 1) if n > 1 and value in column.choices else 0.5
    numbers = [float(v) for v in column.values if isinstance(v, int | float)]
    low, high = min(numbers), max(numbers)
    x = float(value)  # type: ignore[arg-type]
    if column.log and low > 0:
        low, high, x = math.log10(low), math.log10(high), math.log10(x)
    return (x - low) / (high - low) if high > low else 0.5


def _axis_ticks(column: analysis.Column) -> list[tuple[float, str]]:
    if column.choices is not None:
        n = len(column.choices)
        return [(i / (n - 1) if n > 1 else 0.5, str(c)) for i, c in enumerate(column.choices)]
    numbers = [float(v) for v in column.values if isinstance(v, int | float)]
    return [(0.0, f"{min(numbers):.3g}"), (1.0, f"{max(numbers):.3g}")]


def parallel_coordinates(data: ExperimentData, out: Path) -> Figure:
    title = "Hyperparameters and architecture"
    name = "parallel_coordinates"
    table = analysis.param_table(data)
    if len(table.trials) < 2 or not table.columns:
        note = "needs two or more scored trials that differ in a searched parameter"
        return Figure(name, title, "", None, note)
    columns = table.columns
    fig = MplFigure(figsize=(min(16.0, max(8.0, 1.3 * len(columns) + 2)), 5), layout="constrained")
    ax = fig.subplots()
    cmap = _objective_cmap(data)
    norm = Normalize(min(table.objective), max(table.objective))
    order = sorted(range(len(table.trials)), key=lambda i: data.spec.objective.sign * table.objective[i])
    lines: list[list[tuple[int, float]]] = []
    line_colors: list[tuple[float, float, float, float]] = []
    dots: list[tuple[int, float, tuple[float, float, float, float]]] = []
    for i in order:  # the best drawn last, on top
        color = cmap(norm(table.objective[i]))
        segment: list[tuple[int, float]] = []
        for x, column in enumerate([*columns, None]):  # None: the end, closing the last segment
            y = _axis_position(column, column.values[i]) if column is not None else None
            if y is not None:
                segment.append((x, y))
                continue
            if len(segment) > 1:  # an inactive parameter (a missing layer) breaks the line
                lines.append(segment)
                line_colors.append(color)
            elif segment:
                dots.append((*segment[0], color))
            segment = []
    ax.add_collection(LineCollection(lines, colors=line_colors, alpha=0.75, linewidths=1.2))
    if dots:
        ax.scatter([d[0] for d in dots], [d[1] for d in dots], color=[d[2] for d in dots], s=9, alpha=0.75)
    for x, column in enumerate(columns):
        ax.axvline(x, color="black", lw=0.8)
        for y, text in _axis_ticks(column):
            ax.text(x + 0.03, y, text, fontsize=7, va="center", ha="left")
    ax.set_xticks(range(len(columns)), [c.name + (" (log)" if c.log else "") for c in columns])
    ax.tick_params(axis="x", labelrotation=25, labelsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(columns) - 0.5)
    ax.set_ylim(-0.05, 1.05)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=_label(data))
    caption = (
        "One line per trial with an objective value, through its searched parameters (as the strategies "
        "encode them; a layer's parameters only where the trial has that layer) and architecture summary "
        "numbers, coloured by objective (bright is better)."
    )
    return Figure(name, title, caption, _save(fig, out / f"{name}.png"))


def importance(data: ExperimentData, out: Path, result: analysis.Importance | None = None) -> Figure:
    title = "Hyperparameter importance"
    name = "importance"
    result = result or analysis.importance(data)
    if not result.values:
        return Figure(name, title, "", None, result.note)
    items = sorted(result.values.items(), key=lambda kv: kv[1])
    fig = MplFigure(figsize=(8, max(2.5, 0.4 * len(items) + 1.2)), layout="constrained")
    ax = fig.subplots()
    ax.barh([k for k, _ in items], [v for _, v in items], color="#1f77b4")
    ax.set_xlabel("importance (sums to 1)")
    ax.grid(axis="x", alpha=0.3)
    caption = (
        f"{result.evaluator} over the succeeded trials ({result.note}): how much of the objective's "
        "variation among the good trials each parameter explains."
    )
    return Figure(name, title, caption, _save(fig, out / f"{name}.png"))


def pareto_front(data: ExperimentData, out: Path) -> Figure | None:
    """The trials on the first two objectives with the non-dominated front; None: single objective."""
    goals = analysis.pareto_goals(data)
    if not goals:
        return None
    title = "Pareto front"
    name = "pareto_front"
    points = analysis.pareto_points(data, goals)
    if not points:
        return Figure(name, title, "", None, "no succeeded trial reports every objective yet")
    fig = MplFigure(figsize=(7, 5), layout="constrained")
    ax = fig.subplots()
    rest = [p for p in points if not p.front]
    # In score space (every objective maximised) the front, by the first score, is a staircase whose
    # dominated region lies below each step: vertical first, then horizontal (steps-pre).
    front = sorted((p for p in points if p.front), key=lambda p: goals[0].sign * p.values[0])
    ax.scatter(
        [p.values[0] for p in rest], [p.values[1] for p in rest], color="#999999", s=18, label="dominated"
    )
    ax.plot(
        [p.values[0] for p in front],
        [p.values[1] for p in front],
        color="#d62728",
        marker="o",
        drawstyle="steps-pre" if len(front) > 1 else "default",
        label="non-dominated",
    )
    for p in front:
        ax.annotate(
            p.trial, (p.values[0], p.values[1]), fontsize=7, xytext=(3, 3), textcoords="offset points"
        )
    ax.set_xlabel(f"{goals[0].metric} ({goals[0].goal})")
    ax.set_ylabel(f"{goals[1].metric} ({goals[1].goal})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    more = f" (the first two of {len(goals)} objectives)" if len(goals) > 2 else ""
    caption = (
        f"Succeeded trials on the objectives{more}; red: the non-dominated trials "
        f"({len(front)} of {len(points)})."
    )
    return Figure(name, title, caption, _save(fig, out / f"{name}.png"))


def lineage(data: ExperimentData, out: Path) -> Figure | None:
    """Each trial as a bar over the epochs it trained, an arrow from the checkpoint it started from;
    None when no trial continued another's checkpoint."""
    segments = analysis.lineage(data)
    if not segments:
        return None
    name = "lineage"
    fig = MplFigure(figsize=(11, min(14.0, max(3.0, 0.28 * len(segments) + 1.5))), layout="constrained")
    ax = fig.subplots()
    values = [s.value for s in segments if s.value is not None]
    cmap = _objective_cmap(data)
    norm = Normalize(min(values), max(values)) if values else Normalize(0, 1)
    row = {s.trial: i for i, s in enumerate(segments)}
    ax.barh(
        range(len(segments)),
        [max(s.last_epoch - s.first_epoch + 1, 0) for s in segments],
        left=[s.first_epoch - 1 for s in segments],
        height=0.6,
        color=[cmap(norm(s.value)) if s.value is not None else "#d62728" for s in segments],
        edgecolor="black",
        lw=0.4 if len(segments) <= 60 else 0.0,
    )
    # From the parent's row down to the child's (a later trial: a lower row), at the epoch it started from.
    links = [(s.first_epoch - 1, row[s.parent], i) for i, s in enumerate(segments) if s.parent in row]
    ax.add_collection(
        LineCollection([[(x, a), (x, b)] for x, a, b in links], colors="#555555", linewidths=0.8)
    )
    if links:
        ax.scatter(
            [x for x, _, _ in links], [b for _, _, b in links], marker="v", color="#555555", s=12, zorder=3
        )
    step = max(1, math.ceil(len(segments) / 48))  # at most ~48 labels
    ax.set_yticks(range(0, len(segments), step), [s.trial for s in segments][::step], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="x", alpha=0.3)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=_label(data))
    caption = (
        "Each trial as a bar over the epochs it trained itself, coloured by its objective; a line with "
        "an arrowhead leads from the trial whose checkpoint it continued (PBT exploit, MIHA clone or "
        "continuation). The table below gives each trial's note."
    )
    return Figure(name, "Lineage", caption, _save(fig, out / f"{name}.png"))


def _cost_panel(
    ax: Axes,
    costs: Sequence[analysis.Cost],
    x: Callable[[analysis.Cost], float | None],
    xlabel: str,
    data: ExperimentData,
    log: bool,
) -> None:
    points = [(x(c), c) for c in costs]
    shown = [
        (v, c.value, c.phase)
        for v, c in points
        if v is not None and c.value is not None and (v > 0 or not log)
    ]
    for phase in TrialPhase:
        group = [(v, y) for v, y, p in shown if p is phase]
        if group:
            ax.scatter(
                [v for v, _ in group],
                [y for _, y in group],
                color=PHASE_COLORS[phase],
                s=16,
                label=str(phase),
            )
    if log and shown:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(data.spec.objective.metric)
    ax.grid(alpha=0.3)
    if not shown:
        ax.text(0.5, 0.5, "not reported", transform=ax.transAxes, ha="center", va="center", color="#777777")
    else:
        ax.legend(fontsize="x-small")


def costs(data: ExperimentData, out: Path) -> Figure:
    name = "costs"
    title = "Cost of each trial"
    rows = analysis.costs(data)
    if not any(c.value is not None for c in rows):
        return Figure(name, title, "", None, "no trial has reported an objective value yet")
    fig = MplFigure(figsize=(11, 8), layout="constrained")
    axes = fig.subplots(2, 2)
    _cost_panel(axes[0, 0], rows, lambda c: c.training_seconds, "training seconds (own epochs)", data, False)
    _cost_panel(axes[0, 1], rows, lambda c: c.metrics.get("parameters"), "parameters", data, True)
    _cost_panel(axes[1, 0], rows, lambda c: c.metrics.get("flops"), "FLOPs per sample (forward)", data, True)
    gpu = any("gpuUtilization" in c.metrics for c in rows)
    if gpu:
        _cost_panel(
            axes[1, 1], rows, lambda c: c.metrics.get("gpuUtilization"), "GPU utilisation (%)", data, False
        )
    else:
        _cost_panel(
            axes[1, 1], rows, lambda c: c.metrics.get("peakMemoryBytes"), "peak memory (MiB)", data, False
        )
    caption = (
        "Each trial's objective against what it cost: its own training time, parameters, FLOPs of one "
        f"forward pass and {'GPU utilisation' if gpu else 'peak memory'} (parameters, FLOPs and memory "
        "are measured when a trial finishes, so paused and stopped trials have none)."
    )
    return Figure(name, title, caption, _save(fig, out / f"{name}.png"))


def all_figures(
    data: ExperimentData, out: Path, importances: analysis.Importance | None = None
) -> list[Figure]:
    """Every figure that applies to the experiment, drawn into `out` (which must exist)."""
    figures: list[Figure | None] = [
        best_so_far(data, out),
        learning_curves(data, out),
        parallel_coordinates(data, out),
        importance(data, out, importances),
        pareto_front(data, out),
        lineage(data, out),
        costs(data, out),
    ]
    return [f for f in figures if f is not None]
