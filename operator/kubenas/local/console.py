"""The terminal side of `kubenas run`: what happens to the trials, kept in a Progress, shown by a View.

The local backend and the runner tell a Console what happens: the engine's events, the epochs the
trainers append to their metrics files, and the experiment's status after each pass. The Console
keeps it in a Progress (every trial's phase, epoch and objective, the epochs trained, the planned
budget) and hands each happening to a View, which alone decides how it looks:

- PlainView (here): short greppable lines, one per trial event, and a summary line at the end; with
  `verbose`, one line per epoch too. For pipes, CI and `kubectl logs`.
- LiveView (live_view.py, needs rich): a live table of the running and recent trials, for a terminal.

Progress and the Plan behind its estimate of the time left are in progress.py.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Literal, Protocol, TextIO

from kubenas.api.experiment import NASExperimentSpec
from kubenas.api.status import NASExperimentStatus, NASTrialSpec, NASTrialStatus
from kubenas.engine.events import Event
from kubenas.local.progress import Clock, Plan, Progress, TrialState, duration, short

# The recorded spec and status of one trial (None if it has none yet): how the Console learns a
# trial's candidate and outcome without knowing where trials are kept.
TrialReader = Callable[[str], tuple[NASTrialSpec, NASTrialStatus] | None]
Mode = Literal["plain", "live"]

# What each event reason reads as.
VERBS = {
    "TrialCreated": "started",
    "TrialStarted": "starts",
    "TrialPromoted": "promoted",
    "TrialWaiting": "waits",
    "TrialReused": "reused",
    "TrialPaused": "paused",
    "TrialSucceeded": "succeeded",
    "TrialFailed": "failed",
    "TrialStopped": "stopped",
    "TrialInterrupted": "interrupted",
    "TrialRestarted": "restarted",
}
# A failure's message may be a log tail: its line is cut to this many characters.
FAILURE_CHARS = 120


def event_lines(event: Event, trial: TrialState, plan: Plan) -> list[str]:
    """An event as short lines: `<trial> <verb>: <why>`, e.g. `digits-3 stopped: early stopping: ...`.

    A new trial shows its candidate in short, or its note's head when a strategy made it from another
    (PBT, MIHA), the note's further lines indented below. A pause says where (an ASHA rung, a PBT
    generation); a failure shows only its last line (the error of a log tail), cut to fit.
    """
    verb = VERBS.get(event.reason, event.reason)
    first, *rest = event.message.splitlines() or [""]
    if event.reason == "TrialCreated":  # the candidate described, then the strategy's note if any
        first, rest = (rest[0], rest[1:]) if rest else (trial.candidate or first, [])
    elif event.reason == "TrialFailed":
        lines = [line.strip() for line in event.message.splitlines() if line.strip()]
        first, rest = (lines[-1] if lines else ""), []
        if len(first) > FAILURE_CHARS:
            first = first[: FAILURE_CHARS - 3] + "..."
    elif event.reason == "TrialPaused":
        where = plan.rung(trial.index, trial.epoch) or trial.note.split(":", 1)[0]
        first += f" ({where})" if where else ""
    if first.startswith(f"{verb} "):  # "waits for ...": the verb is said once
        head = f"{event.trial} {first}"
    else:
        head = f"{event.trial} {verb}: {first}" if first else f"{event.trial} {verb}"
    return [head, *(f"{event.trial}   {line}" for line in rest)]


def epoch_line(trial: TrialState, row: Mapping[str, float], plan: Plan) -> str:
    """`digits-3 epoch 4/15 accuracy=0.9528 loss=0.21`: the objective and the loss only."""
    shown = dict.fromkeys((plan.objective, "loss"))
    values = " ".join(f"{k}={row[k]:.4g}" for k in shown if k in row)
    return f"{trial.name} epoch {int(row['epoch'])}/{trial.epochs} {values}".rstrip()


def summary_line(progress: Progress) -> str:
    """`experiment digits Succeeded after 1:31: 1 succeeded, 0 failed, 5 stopped, 16 epochs trained;
    best digits-5 accuracy=0.975`."""
    status, plan = progress.status, progress.plan
    c = status.trials
    name = f" {plan.experiment}" if plan.experiment else ""
    counts = f"{c.succeeded} succeeded, {c.failed} failed, {c.stopped} stopped" + (
        f", {c.paused} paused" if c.paused else ""
    )
    best = ""
    if status.best is not None:
        best = f"; best {status.best.trial} {plan.objective}={status.best.objective_value:.4g}"
    return (
        f"experiment{name} {status.phase} after {duration(progress.elapsed)}: {counts}, "
        f"{progress.trained} epochs trained{best}"
    )


class View(Protocol):
    """How a Console shows what happens; it reads the rest from the Progress it was made with."""

    def event(self, event: Event, trial: TrialState) -> None: ...

    def epoch(self, trial: TrialState, row: Mapping[str, float]) -> None: ...

    def warning(self, reason: str, message: str) -> None: ...

    def refresh(self) -> None:
        """After each pass of the controller (about 5 times a second)."""

    def finish(self) -> None:
        """The experiment is over (progress.status is its last status)."""

    def close(self) -> None:
        """Release the terminal, whether or not the run finished (idempotent)."""


ViewFactory = Callable[[Progress], View]


class PlainView:
    """One short line per trial event, a summary line at the end; with `verbose` a line per epoch."""

    def __init__(self, progress: Progress, out: TextIO = sys.stdout, verbose: bool = False) -> None:
        self.progress = progress
        self.out = out
        self.verbose = verbose

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def event(self, event: Event, trial: TrialState) -> None:
        for line in event_lines(event, trial, self.progress.plan):
            self._say(line)

    def epoch(self, trial: TrialState, row: Mapping[str, float]) -> None:
        if self.verbose:
            self._say(epoch_line(trial, row, self.progress.plan))

    def warning(self, reason: str, message: str) -> None:
        self._say(f"warning: {reason}: {message}")

    def refresh(self) -> None:
        pass

    def finish(self) -> None:
        self._say(summary_line(self.progress))

    def close(self) -> None:
        pass


class Console:
    """What the local backend and runner report: the trainers' new epochs are read from their metrics
    files here, and everything is kept in `progress` and handed to the view.

    `Console(objective, epochs)` prints plain lines to `out`; `plan`, `view` and `reader` give it the
    experiment's budget, another view, and the trials' recorded specs and statuses.
    """

    def __init__(
        self,
        objective: str,
        epochs: int,
        out: TextIO = sys.stdout,
        *,
        plan: Plan | None = None,
        view: ViewFactory | None = None,
        reader: TrialReader | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.progress = Progress(plan or Plan(objective, epochs), clock)
        self.view: View = view(self.progress) if view is not None else PlainView(self.progress, out)
        self.reader = reader
        self._offsets: dict[str, int] = {}
        self._shown: dict[str, int] = {}  # the last epoch shown per trial (or inherited at its start)

    def _read(self, name: str) -> tuple[NASTrialSpec, NASTrialStatus] | None:
        return self.reader(name) if self.reader is not None else None

    def recorded(self, trials: Iterable[tuple[str, NASTrialSpec, NASTrialStatus]]) -> None:
        """The trials an earlier run of the experiment recorded (a resumed run)."""
        for name, spec, status in sorted(trials, key=lambda t: t[1].index):
            self.progress.learn(name, spec, status)
            self._shown[name] = status.epochs or 0

    def event(self, event: Event) -> None:
        self.view.event(event, self.progress.event(event, self._read(event.trial)))

    def warning(self, reason: str, message: str) -> None:
        """The experiment's own trouble (it holds off and tries again)."""
        self.view.warning(reason, message)

    def segment_started(self, name: str, starts_after: int) -> None:
        """The trainer rewrites its metrics file from the top, epochs up to `starts_after` first."""
        recorded = self._read(name)
        self.progress.segment(name, starts_after, recorded[0] if recorded else None)
        self._offsets[name] = 0
        self._shown[name] = max(self._shown.get(name, 0), starts_after)

    def epoch_lines(self, name: str, metrics_file: Path) -> None:
        """Take in the epochs the trainer appended since the last call."""
        if not metrics_file.exists():
            return
        with metrics_file.open("rb") as f:
            f.seek(self._offsets.get(name, 0))
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits for the next call
        self._offsets[name] = self._offsets.get(name, 0) + len(complete)
        for line in complete.decode().splitlines():
            row = json.loads(line)
            if row["epoch"] <= self._shown.get(name, 0):
                continue
            self._shown[name] = row["epoch"]
            self.view.epoch(self.progress.epoch(name, row), row)

    def status(self, status: NASExperimentStatus) -> None:
        """The experiment's status after a pass."""
        self.progress.status = status
        self.view.refresh()

    def summary(self, status: NASExperimentStatus) -> None:
        self.progress.status = status
        self.progress.finished = True
        self.view.finish()

    def close(self) -> None:
        self.view.close()


def make_console(
    spec: NASExperimentSpec,
    experiment: str,
    mode: Mode = "plain",
    verbose: bool = False,
    reader: TrialReader | None = None,
    out: TextIO = sys.stdout,
) -> Console:
    """The console of `kubenas run`: plain lines, or (`live`, needs rich) a live table."""
    plan = Plan.of(spec, experiment)
    factory: ViewFactory
    if mode == "live":
        from kubenas.local.live_view import LiveView

        def factory(progress: Progress) -> View:
            return LiveView(progress, verbose=verbose, file=out)

    else:

        def factory(progress: Progress) -> View:
            return PlainView(progress, out, verbose)

    return Console(plan.objective, plan.epochs, plan=plan, view=factory, reader=reader)


__all__ = ["Console", "PlainView", "Plan", "Progress", "TrialState", "View", "make_console", "short"]
