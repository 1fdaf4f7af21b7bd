"""The strategy interface every search algorithm implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from kubenas_trainer.spec import CamelModel, Candidate

from kubenas.api.errors import parse_model
from kubenas.api.experiment import Objective
from kubenas.api.space import SearchSpace
from kubenas.trials import TrialRecord


class NoSettings(CamelModel):
    """A strategy without settings accepts none (a typo is an error, not silently ignored)."""


class Strategy(ABC):
    """Proposes candidates from the recorded history.

    Pure and seeded: the candidate for trial index i depends only on the seed, i and the history,
    so a restarted controller that rebuilds the history proposes the same trials, never new ones
    for indices it already created.
    """

    name: ClassVar[str]
    Settings: ClassVar[type[CamelModel]] = NoSettings

    def __init__(self, space: SearchSpace, objective: Objective, seed: int, settings: Mapping[str, Any]):
        self.space = space
        self.objective = objective
        self.seed = seed
        self.settings = parse_model(self.Settings, dict(settings), prefix="spec.strategy.settings")

    @abstractmethod
    def ask(self, history: Sequence[TrialRecord], count: int) -> list[Candidate]:
        """Up to count candidates for the trial indices after the history's; fewer means exhausted."""

    def pareto_front(self, history: Sequence[TrialRecord]) -> list[TrialRecord] | None:
        """The non-dominated trials of a multi-objective strategy; None for a single objective."""
        return None


def next_index(history: Sequence[TrialRecord]) -> int:
    return 1 + max((t.index for t in history), default=-1)
