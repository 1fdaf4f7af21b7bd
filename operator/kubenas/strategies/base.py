"""The strategy interface every search algorithm implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from kubenas_trainer.spec import CamelModel, Candidate

from kubenas.api.errors import parse_model
from kubenas.api.experiment import Objective
from kubenas.api.space import SearchSpace
from kubenas.engine.records import TrialRecord


@dataclass(frozen=True)
class Proposal:
    """A trial to create: its candidate and, for strategies that continue trials (PBT, MIHA), the trial
    whose checkpoint it starts from, the epoch it pauses at, and a readable note of why."""

    candidate: Candidate
    start_from: str | None = None
    stop_at_epoch: int | None = None
    note: str = ""


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
    # The completion reason when propose() says it is done before maxTrials.
    exhausted_reason: ClassVar[str] = "SearchSpaceExhausted"

    # Whether the strategy continues trials from others' checkpoints and schedules their segments
    # itself (PBT, MIHA): then no earlyStopping rule may pause or stop its trials.
    continues_trials: ClassVar[bool] = False

    def __init__(
        self,
        space: SearchSpace,
        objective: Objective,
        seed: int,
        settings: Mapping[str, Any],
        *,
        epochs: int = 10,
        max_trials: int = 10,
    ):
        """`epochs` is spec.training.epochs and `max_trials` spec.budget.maxTrials: strategies that
        schedule segments check their plan against them (raising SpecError naming the field)."""
        self.space = space
        self.objective = objective
        self.seed = seed
        self.epochs = epochs
        self.max_trials = max_trials
        self.settings = parse_model(self.Settings, dict(settings), prefix="spec.strategy.settings")
        self.setup()

    def setup(self) -> None:  # noqa: B027 (a hook: most strategies derive nothing)
        """Build what the strategy derives from its space and settings (raising SpecError for a plan
        that cannot fit training.epochs or budget.maxTrials); nothing by default."""

    @abstractmethod
    def ask(self, history: Sequence[TrialRecord], count: int) -> list[Candidate]:
        """Up to count candidates for the trial indices after the history's; fewer means exhausted."""

    def propose(self, history: Sequence[TrialRecord], count: int) -> tuple[list[Proposal], bool]:
        """Up to count trials to create, and whether the strategy is done (it has no more to offer).

        Fewer than count without being done means: wait for the running trials (e.g. a PBT generation).
        """
        candidates = self.ask(history, count)
        return [Proposal(c) for c in candidates], len(candidates) < count

    def pareto_front(self, history: Sequence[TrialRecord]) -> list[TrialRecord] | None:
        """The non-dominated trials of a multi-objective strategy; None for a single objective."""
        return None


def next_index(history: Sequence[TrialRecord]) -> int:
    return 1 + max((t.index for t in history), default=-1)
