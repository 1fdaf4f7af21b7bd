"""The terminal view of a local run: one line per trial event, epoch lines as the trainer writes them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from kubenas.api.status import NASExperimentStatus
from kubenas.engine.events import Event

# What each event reason reads as in the terminal.
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
}


def _fmt(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "epoch")


class Console:
    def __init__(self, objective: str, epochs: int, out: TextIO = sys.stdout):
        self.objective = objective
        self.epochs = epochs
        self.out = out
        self._offsets: dict[str, int] = {}
        self._shown: dict[str, int] = {}  # the last epoch printed per trial (or inherited at its start)

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def event(self, event: Event) -> None:
        verb = VERBS.get(event.reason, event.reason)
        first, *rest = event.message.splitlines() or [""]
        if first.split(" ", 1)[0] == verb:  # "waits for ...": the verb is said once
            first = first.split(" ", 1)[1] if " " in first else ""
        self._say(f"[{event.trial}] {verb:9} {first}")
        for line in rest:
            self._say(f"[{event.trial}]   {line}")

    def warning(self, reason: str, message: str) -> None:
        """The experiment's own trouble (it holds off and tries again)."""
        self._say(f"[warning] {reason}: {message}")

    def segment_started(self, name: str, starts_after: int) -> None:
        """The trainer rewrites its metrics file from the top, epochs up to `starts_after` first."""
        self._offsets[name] = 0
        self._shown[name] = max(self._shown.get(name, 0), starts_after)

    def epoch_lines(self, name: str, metrics_file: Path) -> None:
        """Print the epochs the trainer appended since the last call."""
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
            self._say(f"[{name}] epoch {row['epoch']}/{self.epochs}  {_fmt(row)}")

    def summary(self, status: NASExperimentStatus) -> None:
        c = status.trials
        self._say(
            f"experiment {status.phase}: {c.succeeded} succeeded, {c.failed} failed, {c.stopped} stopped"
            + (f", {c.paused} paused" if c.paused else "")
            + (
                f"; best {status.best.trial} {self.objective}={status.best.objective_value:.4g}"
                if status.best
                else ""
            )
        )
