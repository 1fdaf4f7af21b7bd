"""`kubenas status`: where an experiment stands, for a person (a table) or a program (JSON, YAML).

Everything but `show` is a pure function of an ExperimentData (a local run directory or a cluster's
objects: kubenas.inspect.rundata, kubenas.inspect.cluster) and, for the running trials' times, `now`.
`show` picks the presentation: rich's table on a terminal, plain aligned text otherwise (a pipe, a file,
or rich not installed), the same cells either way.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import yaml
from kubenas_trainer.spec import OBJECTIVE_METRICS, Direction

from kubenas.api.status import Condition, NASExperimentStatus, TrialPhase
from kubenas.engine.events import describe
from kubenas.inspect.rundata import ExperimentData, TrialData

OUTPUTS = ("table", "json", "yaml")
# Each key sorts in its natural order: the objective (or a metric) best first, by its direction; names
# as numbers read (digits-2 before digits-10); phases live first; most epochs and longest time first.
SORT_KEYS = ("objective", "name", "phase", "epochs", "started", "duration", *OBJECTIVE_METRICS)
PHASE_ORDER = {
    TrialPhase.RUNNING: 0,
    TrialPhase.PAUSED: 1,
    TrialPhase.PENDING: 2,
    TrialPhase.SUCCEEDED: 3,
    TrialPhase.STOPPED: 4,
    TrialPhase.FAILED: 5,
}
BEST_MARK = "*"
MISSING = "-"

SortValue = tuple[float | str, ...]


def _timestamp(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def _best_so_far(trial: TrialData, metric: str, sign: float) -> float | None:
    """The best value of `metric` (higher is better if sign > 0) among the epochs reported so far."""
    seen = [v for row in trial.epochs if (v := _number(row.get(metric))) is not None]
    return (max if sign > 0 else min)(seen) if seen else None


def objective_value(data: ExperimentData, trial: TrialData) -> float | None:
    """The trial's objective: its status's (the best epoch's) once it has one, else the best of the
    epochs it has reported so far (a running trial)."""
    value = _number(trial.status.objective_value)
    objective = data.spec.objective
    return value if value is not None else _best_so_far(trial, objective.metric, objective.sign)


def trained_epochs(trial: TrialData) -> int | None:
    """Epochs trained so far: the status's count, or the metrics rows of a trial still running."""
    counts = [trial.status.epochs or 0, *(int(row.get("epoch", 0)) for row in trial.epochs[-1:])]
    return max(counts) or None


def planned_epochs(data: ExperimentData, trial: TrialData) -> int:
    return trial.spec.candidate.hyperparameters.epochs or data.spec.training.epochs


def duration(trial: TrialData, now: datetime) -> float | None:
    """Seconds from the trial's start to its completion, or to `now` while it runs."""
    start = _timestamp(trial.status.start_time)
    end = _timestamp(trial.status.completion_time)
    if end is None and trial.status.phase is TrialPhase.RUNNING:
        end = now
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


def _natural(name: str) -> SortValue:
    """digits-2 before digits-10: digit runs compare as numbers (re.split alternates text, digits)."""
    return tuple(int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", name)))


def _sort_value(data: ExperimentData, trial: TrialData, key: str, now: datetime) -> SortValue | None:
    """The trial's place under `key`, smaller first; None where it has no value (listed last)."""
    if key == "name":
        return _natural(trial.name)
    if key == "phase":
        return (PHASE_ORDER[trial.status.phase],)
    if key == "epochs":
        epochs = trained_epochs(trial)
        return None if epochs is None else (-epochs,)
    if key == "started":
        start = _timestamp(trial.status.start_time)
        return None if start is None else (start.timestamp(),)
    if key == "duration":
        seconds = duration(trial, now)
        return None if seconds is None else (-seconds,)
    if key == "objective":
        value, sign = objective_value(data, trial), data.spec.objective.sign
    else:
        sign = 1.0 if OBJECTIVE_METRICS[key] is Direction.MAXIMIZE else -1.0
        value = _number(trial.status.metrics.get(key))
        value = value if value is not None else _best_so_far(trial, key, sign)
    return None if value is None else (-sign * value,)


def sort_trials(
    data: ExperimentData, key: str = "objective", reverse: bool = False, now: datetime | None = None
) -> list[TrialData]:
    """The trials in `key`'s order (SORT_KEYS), ties by index; `reverse` flips the order of the trials
    that have a value, and those without one (a trial not yet measured) stay last either way."""
    if key not in SORT_KEYS:
        raise ValueError(f"unknown sort key {key!r}; one of {', '.join(SORT_KEYS)}")
    moment = now or datetime.now(UTC)
    by_index = sorted(data.trials, key=lambda t: t.spec.index)
    valued = [(trial, _sort_value(data, trial, key, moment)) for trial in by_index]
    present = [(trial, value) for trial, value in valued if value is not None]
    present.sort(key=lambda pair: pair[1], reverse=reverse)  # stable: ties keep index order
    return [trial for trial, _ in present] + [trial for trial, value in valued if value is None]


def phase_condition(status: NASExperimentStatus) -> Condition | None:
    """The condition that explains the phase: the one of the phase's type, else Running (a Pending
    experiment's Running=False says why nothing runs)."""
    by_type = {c.type: c for c in status.conditions}
    return by_type.get(status.phase.value) or by_type.get("Running")


# --- JSON and YAML ---------------------------------------------------------------------------------


def status_document(data: ExperimentData, trials: Sequence[TrialData]) -> dict[str, Any]:
    """What `-o json` and `-o yaml` print: the objective, the experiment's status as the API server
    holds it (best trial included) and every trial's spec and status, in `trials`' order."""
    objective = data.spec.objective
    return {
        "name": data.name,
        "objective": {
            "metric": objective.metric,
            "direction": objective.goal.value,
            **({"target": objective.target} if objective.target is not None else {}),
        },
        "status": data.status.to_dict(),
        "trials": [
            {"name": trial.name, "spec": trial.spec.to_dict(), "status": trial.status.to_dict()}
            for trial in trials
        ],
    }


def render_json(data: ExperimentData, trials: Sequence[TrialData]) -> str:
    return json.dumps(status_document(data, trials), indent=2) + "\n"


def render_yaml(data: ExperimentData, trials: Sequence[TrialData]) -> str:
    return yaml.safe_dump(status_document(data, trials), sort_keys=False)


# --- the table --------------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _metric(name: str, value: float) -> str:
    if name.endswith("Bytes"):
        return f"{name}={value / 2**20:.4g}MiB"
    return f"{name}={_fmt(value)}"


def _metrics(metrics: dict[str, float], keys: Sequence[str]) -> str:
    return " ".join(_metric(k, metrics[k]) for k in keys if k in metrics)


def format_seconds(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


@dataclass(frozen=True)
class Column:
    heading: str
    numeric: bool = False  # right-aligned on a terminal
    wraps: bool = False  # may fold onto more lines on a narrow terminal


@dataclass(frozen=True)
class Row:
    best: bool
    phase: TrialPhase
    cells: tuple[str, ...]


@dataclass(frozen=True)
class TrialTable:
    """The trial table's columns and rows (one per trial, cells as the columns say)."""

    columns: tuple[Column, ...]
    rows: tuple[Row, ...]


def _message(trial: TrialData) -> str:
    """The first line of the trial's message, after its failure reason."""
    first = trial.status.message.splitlines()[0] if trial.status.message else ""
    if trial.status.reason and trial.status.phase is TrialPhase.FAILED:
        return f"{trial.status.reason}: {first}" if first else trial.status.reason
    return first


def trial_table(data: ExperimentData, trials: Sequence[TrialData], now: datetime) -> TrialTable:
    """The best trial marked *, name, phase, objective, epochs trained of planned, time, candidate, and
    the message column where any trial has a message."""
    best = data.status.best.trial if data.status.best is not None else None
    messages = [_message(trial) for trial in trials]
    columns = [
        Column(""),
        Column("TRIAL"),
        Column("PHASE"),
        Column(data.spec.objective.metric.upper(), numeric=True),
        Column("EPOCHS", numeric=True),
        Column("TIME", numeric=True),
        Column("CANDIDATE", wraps=True),
    ]
    if any(messages):
        columns.append(Column("MESSAGE", wraps=True))
    rows = []
    for trial, message in zip(trials, messages, strict=True):
        value = objective_value(data, trial)
        seconds = duration(trial, now)
        cells = (
            BEST_MARK if trial.name == best else "",
            trial.name,
            trial.status.phase.value,
            MISSING if value is None else _fmt(value),
            f"{trained_epochs(trial) or 0}/{planned_epochs(data, trial)}",
            MISSING if seconds is None else format_seconds(seconds),
            describe(trial.spec.candidate),
            message,
        )
        rows.append(Row(trial.name == best, trial.status.phase, cells[: len(columns)]))
    return TrialTable(tuple(columns), tuple(rows))


def summary_lines(data: ExperimentData, now: datetime) -> list[tuple[str, str]]:
    """The lines above the table, as (label, text): phase and why, objective, progress, times, the best
    trial with its candidate and metrics, and any other condition, the backoff and the Pareto front."""
    status, objective = data.status, data.spec.objective
    lines: list[tuple[str, str]] = []
    why = phase_condition(status)
    phase = status.phase.value + (f" ({why.reason})" if why is not None else "")
    lines.append(("experiment", f"{data.name}: {phase}"))
    if why is not None and why.message:
        lines.append(("", why.message))
    target = f", target {_fmt(objective.target)}" if objective.target is not None else ""
    lines.append(("objective", f"{objective.metric} ({objective.goal.value}{target})"))
    counts = status.trials.model_dump()
    tally = ", ".join(f"{n} {state}" for state, n in counts.items() if state != "created" and n)
    progress = status.progress or f"{len(data.trials)} trials"
    lines.append(("progress", progress + (f": {tally}" if tally else "")))
    start, end = _timestamp(status.start_time), _timestamp(status.completion_time)
    if start is not None:
        elapsed = format_seconds(((end or now) - start).total_seconds())
        times = f"{status.start_time}, completed {status.completion_time}" if end else status.start_time
        lines.append(("started", f"{times} ({elapsed})"))
    for condition in status.conditions:
        if condition is why or condition.type in ("Running", "Succeeded", "Failed"):
            continue
        text = f"{condition.type}={condition.status} {condition.reason}"
        lines.append(("condition", text + (f": {condition.message}" if condition.message else "")))
    if status.backoff is not None:
        b = status.backoff
        lines.append(("backoff", f"{b.reason}, {b.attempts} attempts, next at {b.next_attempt}"))
    if status.best is not None:
        best = status.best
        quality = [m for m in OBJECTIVE_METRICS if m != "trainingSeconds"]
        lines.append(("best", f"{best.trial} {objective.metric}={_fmt(best.objective_value)}"))
        lines.append(("candidate", describe(best.candidate)))
        if validation := _metrics(best.metrics, quality):
            lines.append(("validation", validation))
        if test := _metrics(best.test_metrics, quality):
            lines.append(("test", test))
        if cost := _metrics(best.metrics, sorted(k for k in best.metrics if k not in quality)):
            lines.append(("cost", cost))
        if best.model_uri:
            lines.append(("model", best.model_uri))
    else:
        lines.append(("best", "none yet"))
    if status.pareto_front:
        size = status.pareto_front_size or len(status.pareto_front)
        names = ", ".join(member.trial for member in status.pareto_front)
        lines.append(("pareto front", f"{size} trials: {names}"))
    return lines


def _aligned(table: TrialTable) -> list[str]:
    """The heading and the rows in columns two spaces apart, numbers right-aligned."""
    lines = [tuple(column.heading for column in table.columns), *(row.cells for row in table.rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(table.columns))]

    def cell(text: str, width: int, column: Column) -> str:
        return text.rjust(width) if column.numeric else text.ljust(width)

    return [
        "  ".join(cell(*fields) for fields in zip(line, widths, table.columns, strict=True)).rstrip()
        for line in lines
    ]


def render_text(data: ExperimentData, trials: Sequence[TrialData], now: datetime) -> str:
    """The plain-text view: the summary, then one aligned line per trial (the best marked *)."""
    summary = summary_lines(data, now)
    width = max(len(label) for label, _ in summary)
    out = [f"{label:<{width}}  {text}".rstrip() for label, text in summary]
    out.append("")
    if trials:
        out += _aligned(trial_table(data, trials, now))
    else:
        out.append("no trials yet")
    return "\n".join(out) + "\n"


PHASE_STYLES = {
    "Running": "cyan",
    "Paused": "blue",
    "Pending": "dim",
    "Succeeded": "green",
    "Stopped": "yellow",
    "Failed": "red",
}


def print_rich(data: ExperimentData, trials: Sequence[TrialData], now: datetime, out: TextIO) -> None:
    """The terminal view: the same summary and cells as render_text, with rich's table and colours."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=out)
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    for label, text in summary_lines(data, now):
        style = PHASE_STYLES.get(data.status.phase.value, "") if label == "experiment" else ""
        summary.add_row(label, Text(text, style=style))
    console.print(summary)
    if not trials:
        console.print("no trials yet")
        return
    table = trial_table(data, trials, now)
    grid = Table(box=None, header_style="bold", pad_edge=False)
    for column in table.columns:
        grid.add_column(
            column.heading,
            justify="right" if column.numeric else "left",
            no_wrap=not column.wraps,
            overflow="fold",
        )
    for row in table.rows:
        cells = [Text(cell) for cell in row.cells]
        cells[2].stylize(PHASE_STYLES[row.phase.value])
        grid.add_row(*cells, style="bold" if row.best else None)
    console.print()
    console.print(grid)


def _has_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def show(
    data: ExperimentData,
    output: str = "table",
    sort: str = "objective",
    reverse: bool = False,
    out: TextIO = sys.stdout,
    now: datetime | None = None,
) -> None:
    """Print the experiment in `output` (OUTPUTS) with its trials in `sort`'s order."""
    moment = now or datetime.now(UTC)
    trials = sort_trials(data, sort, reverse, moment)
    if output == "json":
        out.write(render_json(data, trials))
    elif output == "yaml":
        out.write(render_yaml(data, trials))
    elif output == "table":
        if out.isatty() and _has_rich():
            print_rich(data, trials, moment, out)
        else:
            out.write(render_text(data, trials, moment))
    else:
        raise ValueError(f"unknown output {output!r}; one of {', '.join(OUTPUTS)}")
