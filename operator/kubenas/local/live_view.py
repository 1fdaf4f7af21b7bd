"""The live view of `kubenas run` in a terminal (rich): a table of the running and recent trials.

Above the table: the experiment, its trials so far, the time elapsed and an estimate of the time
left (Progress.seconds_left: the epochs left of the budget at this run's rate). Below it: the best
trial so far, the trials by phase, and what the estimate rests on. Whatever a trial went through
that the table cannot keep (it was stopped, promoted, paused, reused, copied by PBT or cloned by
MIHA, or failed) is printed once above the live display, with the engine's why, and stays in the
terminal's scrollback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TextIO

from rich.console import Console as RichConsole
from rich.console import Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from kubenas.engine.events import Event
from kubenas.local.console import epoch_line, event_lines, summary_line
from kubenas.local.progress import OPEN, Progress, TrialState, duration

# New trials and relaunches are rows of the table; every other event is also a line above it.
TABLE_ONLY = frozenset({"TrialStarted"})
STYLES = {
    "running": "cyan",
    "pending": "dim",
    "waiting": "dim",
    "paused": "blue",
    "succeeded": "green",
    "reused": "green",
    "failed": "red",
    "stopped": "yellow",
}
EVENT_STYLES = {
    "TrialCreated": "cyan",
    "TrialPromoted": "cyan",
    "TrialPaused": "blue",
    "TrialSucceeded": "green",
    "TrialReused": "green",
    "TrialFailed": "red",
    "TrialStopped": "yellow",
    "TrialInterrupted": "yellow",
    "TrialRestarted": "yellow",
}
BAR_WIDTH = 16  # characters of a trial's epoch bar (half in a terminal narrower than 100 columns)
PHASE_ORDER = ("running", "pending", "paused", "succeeded", "failed", "stopped")


def is_plain_start(event: Event) -> bool:
    """A new trial without a strategy's note (its message is the candidate alone): a row, no line."""
    return event.reason == "TrialCreated" and len(event.message.splitlines()) == 1


class LiveView:
    """A rich Live display redrawn after every pass of the controller.

    `rows` (and the terminal's height) bounds the table: every open trial (pending, running, waiting)
    is shown, then the most recently changed others, in trial order; what does not fit the terminal
    is cut at its bottom.
    """

    def __init__(
        self,
        progress: Progress,
        *,
        verbose: bool = False,
        file: TextIO | None = None,
        console: RichConsole | None = None,
        rows: int = 12,
    ) -> None:
        self.progress = progress
        self.verbose = verbose
        self.console = console or RichConsole(file=file)
        self.rows = rows
        self._live: Live | None = None

    @property
    def live(self) -> Live:
        """The display, started on first use (not when the view is made, so nothing draws early)."""
        if self._live is None:
            self._live = Live(self.render(), console=self.console, auto_refresh=False)
            self._live.start()
        return self._live

    def _print(self, line: str, style: str = "") -> None:
        self.live.console.print(Text(line, style=style), soft_wrap=True)

    def event(self, event: Event, trial: TrialState) -> None:
        if event.reason in TABLE_ONLY or is_plain_start(event):
            return
        style = EVENT_STYLES.get(event.reason, "")
        for line in event_lines(event, trial, self.progress.plan):
            self._print(line, style)

    def epoch(self, trial: TrialState, row: Mapping[str, float]) -> None:
        if self.verbose:
            self._print(epoch_line(trial, row, self.progress.plan), "dim")

    def warning(self, reason: str, message: str) -> None:
        self._print(f"warning: {reason}: {message}", "bold yellow")

    def refresh(self) -> None:
        self.live.update(self.render(), refresh=True)

    def finish(self) -> None:
        self.refresh()
        self.close()
        self.console.print(Text(summary_line(self.progress), style="bold"), soft_wrap=True)  # one line

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()  # draws the last frame: in a terminal, followed by a new line
            self._live = None
            if not self.console.is_terminal:
                self.console.line()

    # What is drawn.

    def render(self) -> RenderableType:
        return Group(self.header(), self.table(), self.footer())

    def header(self) -> Text:
        p = self.progress
        plan, status = p.plan, p.status
        how = plan.strategy + (f" + {plan.rule}" if plan.rule != "none" else "")
        created = max(status.trials.created, len(p.trials))
        trials = f"{created}/{plan.trials}" if plan.trials else str(created)
        text = Text()
        text.append(plan.experiment or "experiment", style="bold")
        text.append(f"  {how}  trials {trials}  elapsed {duration(p.elapsed)}  ")
        text.append(self.time_left(), style="bold")
        return text

    def time_left(self) -> str:
        """`~1:10 left`, `time left: estimating` before the first epoch, or `done`."""
        p = self.progress
        seconds = p.seconds_left()
        if p.finished:
            return "done"
        return "time left: estimating" if seconds is None else f"~{duration(seconds)} left"

    def basis(self) -> str:
        """What the estimate rests on: `26 epochs to go at 0.62/s (budget: 6 trials x 15 epochs)`."""
        p = self.progress
        rate = p.rate()
        speed = f" at {rate:.2g}/s" if rate is not None else ""
        budget = f" (budget: {p.plan.basis})" if p.plan.basis else ""
        return f"{p.remaining_epochs()} epochs to go{speed}{budget}"

    def shown(self) -> list[TrialState]:
        trials = self.progress.trials.values()
        open_trials = [t for t in trials if t.phase in OPEN]
        others = sorted((t for t in trials if t.phase not in OPEN), key=lambda t: -t.changed)
        rows = min(self.rows, self.console.height - 7)  # the header, column names, caption, footer
        room = max(0, rows - len(open_trials))
        return sorted(open_trials + others[:room], key=lambda t: t.index)

    def table(self) -> Table:
        """One row per shown trial. Only the candidate gives way to a narrow terminal (cut with an
        ellipsis); the name, epochs, objective and phase keep their widths."""
        plan = self.progress.plan
        shown = self.shown()
        rows = []
        for t in shown:
            count = f"{t.epoch}/{t.epochs}"
            if t.phase in OPEN and t.target < t.epochs:
                count += f" >{t.target}"  # where its segment pauses
            value = "" if t.objective is None else f"{t.objective:.4f}"
            rows.append((t, count, value))
        bar = BAR_WIDTH if self.console.width >= 100 else BAR_WIDTH // 2
        fixed = [
            max([len("trial"), *(len(t.name) for t in shown)]),
            bar,
            max([0, *(len(count) for _, count, _ in rows)]),
            max([len(plan.objective), *(len(value) for _, _, value in rows)]),
            max([len("phase"), *(len(t.phase) for t in shown)]),
        ]
        room = self.console.width - sum(fixed) - 2 * len(fixed)  # two spaces between columns
        table = Table(box=None, pad_edge=False, header_style="bold", expand=False)
        table.add_column("trial", no_wrap=True, min_width=fixed[0])
        table.add_column("candidate", no_wrap=True, overflow="ellipsis", max_width=max(8, room))
        table.add_column("epochs", no_wrap=True, min_width=fixed[1])
        table.add_column("", no_wrap=True, justify="right", min_width=fixed[2])
        table.add_column(plan.objective, no_wrap=True, justify="right", min_width=fixed[3])
        table.add_column("phase", no_wrap=True, min_width=fixed[4])
        for t, count, value in rows:
            progress = ProgressBar(total=max(1, t.epochs), completed=t.epoch, width=bar)
            phase = Text(t.phase, style=STYLES.get(t.phase, ""))
            table.add_row(t.name, t.candidate, progress, count, value, phase)
        hidden = len(self.progress.trials) - len(shown)
        if hidden > 0:
            table.caption = f"{hidden} more trial{'s' if hidden > 1 else ''} not shown"
            table.caption_justify = "left"
        return table

    def footer(self) -> Group:
        p = self.progress
        status = p.status
        best = Text("best ", style="bold")
        leader = p.leader()
        if status.best is not None:
            trial = p.trials.get(status.best.trial)
            best.append(f"{status.best.trial} {p.plan.objective}={status.best.objective_value:.4f}")
            if trial is not None and trial.candidate:
                best.append(f"  {trial.candidate}", style="dim")
        elif leader is not None and leader.objective is not None:  # none finished yet: the leader so far
            best.append(
                f"so far {leader.name} {p.plan.objective}={leader.objective:.4f} "
                f"({leader.phase} at epoch {leader.epoch}/{leader.epochs})"
            )
            if leader.candidate:
                best.append(f"  {leader.candidate}", style="dim")
        else:
            best.append("none yet")
        c = status.trials
        counts = Text("  ".join(f"{phase} {getattr(c, phase)}" for phase in PHASE_ORDER))
        if p.finished:
            return Group(best, counts)
        return Group(best, counts, Text(self.basis(), style="dim"))
