"""The scheduler interface: decisions on running trials from their per-epoch metrics.

A scheduler is pure: decide(trial, history) depends only on the recorded per-epoch scores, so an
operator restart re-derives every decision. Scores are signed so that higher is better.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TrialCurve:
    """What a scheduler knows of one trial: its index and its score after each epoch so far.

    `paused` marks a trial that a scheduler stopped at a rung and that holds a checkpoint there.
    """

    name: str
    index: int
    scores: tuple[float, ...] = ()
    paused: bool = False

    @property
    def epochs(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class Continue:
    """Keep training."""


@dataclass(frozen=True)
class Stop:
    """Stop now (a paused trial keeps its checkpoint and may be promoted later)."""

    reason: str


@dataclass(frozen=True)
class Promote:
    """Resume from the checkpoint and train up to `epochs` epochs in total."""

    epochs: int
    reason: str


Decision = Continue | Stop | Promote


class Scheduler(ABC):
    @abstractmethod
    def decide(self, trial: TrialCurve, history: Sequence[TrialCurve]) -> Decision:
        """The decision for `trial` given every trial's progress (it may or may not include `trial`)."""


def others(trial: TrialCurve, history: Sequence[TrialCurve]) -> list[TrialCurve]:
    return [t for t in history if t.name != trial.name]
