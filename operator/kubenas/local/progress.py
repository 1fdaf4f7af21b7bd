"""Live progress in the terminal: one line per trial event, epoch lines read as the trainer writes them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from kubenas_trainer.spec import Candidate

from kubenas.api.status import NASExperimentStatus, NASTrialStatus


def describe(candidate: Candidate) -> str:
    layers = " > ".join(
        f"{layer.type}({layer.units},{layer.activation}{f',drop={layer.dropout:g}' if layer.dropout else ''})"
        for layer in candidate.architecture.layers
    )
    hp = candidate.hyperparameters
    return f"{layers} | {hp.optimizer} lr={hp.learning_rate:.3g} batch={hp.batch_size}"


def _fmt(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "epoch")


class Progress:
    def __init__(self, objective: str, epochs: int, out: TextIO = sys.stdout):
        self.objective = objective
        self.epochs = epochs
        self.out = out
        self._offsets: dict[str, int] = {}
        self._inherited: dict[str, int] = {}  # epochs a trial took over from another's checkpoint

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def started(self, name: str, candidate: Candidate, note: str = "", inherited: int = 0) -> None:
        """`inherited`: epochs of the checkpoint it starts from, whose lines its curve repeats."""
        self._inherited[name] = inherited
        self._say(f"[{name}] started   {describe(candidate)}")
        for line in note.splitlines():
            self._say(f"[{name}]   {line}")

    def waiting(self, name: str, twin: str) -> None:
        self._say(f"[{name}] waits     for the result of {twin} (same candidate, still training)")

    def resumed(self, name: str, stop_at: int | None) -> None:
        self._say(f"[{name}] promoted  continues to epoch {stop_at or self.epochs}")

    def epochs_written(self, name: str, metrics_file: Path) -> None:
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
            if row["epoch"] <= self._inherited.get(name, 0):
                continue
            self._say(f"[{name}] epoch {row['epoch']}/{self.epochs}  {_fmt(row)}")

    def finished(self, name: str, status: NASTrialStatus) -> None:
        if status.phase in ("Succeeded", "Paused"):
            detail = _fmt(status.metrics) + (f"  ({status.message})" if status.message else "")
        else:
            detail = (status.message.splitlines() or [""])[-1]
        self._say(f"[{name}] {status.phase.lower():9} {detail}")

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
