"""Search algorithms on a ParamSpace, and the adapter that makes one a kubenas Strategy.

A Searcher sees the history as Observations (points with a score where higher is better) and
proposes points; it keeps no state between calls, so the same observations give the same proposals.
The benchmarks drive searchers directly on their own ParamSpace.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from kubenas_trainer.spec import CamelModel, Candidate, Direction

from kubenas.api.experiment import Objective
from kubenas.api.status import TrialPhase
from kubenas.space.encoding import CandidateCodec
from kubenas.space.params import ParamSpace, Point
from kubenas.strategies.base import NoSettings, Strategy, next_index
from kubenas.trials import TrialRecord


@dataclass(frozen=True)
class Observation:
    """One recorded trial: its point, and its score (higher is better) once it succeeded."""

    index: int
    point: Point
    score: float | None = None
    pending: bool = False


def derived_seed(*keys: int) -> int:
    """A 31-bit seed that is a function of the keys only (e.g. the experiment seed and a trial index)."""
    return int(np.random.SeedSequence([abs(k) for k in keys]).generate_state(1)[0] >> 1)


def rng_for(seed: int, index: int, salt: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, abs(index), salt])


class Searcher(ABC):
    """Proposes points of a ParamSpace from the observations; pure given (seed, observations)."""

    Settings: ClassVar[type[CamelModel]] = NoSettings

    def __init__(self, space: ParamSpace, seed: int, settings: CamelModel | None = None) -> None:
        self.space = space
        self.seed = seed
        self.settings = settings if settings is not None else self.Settings()

    @abstractmethod
    def propose(self, observations: Sequence[Observation], start: int, count: int) -> list[Point]:
        """Points for trial indices start .. start+count-1; fewer than count means exhausted."""


class RandomSearcher(Searcher):
    """Independent draws, one generator per trial index."""

    def propose(self, observations: Sequence[Observation], start: int, count: int) -> list[Point]:
        return [self.space.sample(rng_for(self.seed, i)) for i in range(start, start + count)]


# Phases whose metrics are a result: a paused or stopped trial (ASHA's rungs, the median rule) reports
# its objective at the epoch it reached, a lower-fidelity estimate that still ranks it against the
# others (as optuna's TPE ranks pruned trials by their last intermediate value).
SCORED_PHASES = (TrialPhase.SUCCEEDED, TrialPhase.PAUSED, TrialPhase.STOPPED)


def score_of(trial: TrialRecord, objective: Objective) -> float | None:
    """The trial's objective value, signed so that higher is better; None unless it has a result
    with a finite value (a NaN or infinite metric counts as a failure, not as a score)."""
    value = trial.metrics.get(objective.metric) if trial.phase in SCORED_PHASES else None
    if value is None or not math.isfinite(value):
        return None
    return float(value) if objective.goal is Direction.MAXIMIZE else -float(value)


class SearcherStrategy(Strategy):
    """A Strategy that encodes candidates as points and asks a Searcher."""

    searcher: ClassVar[type[Searcher]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.Settings = cls.searcher.Settings

    def setup(self) -> None:
        self.codec = CandidateCodec(self.space)
        self.algorithm = self.searcher(self.codec.space, self.seed, self.settings)

    def observations(self, history: Sequence[TrialRecord]) -> list[Observation]:
        return [
            Observation(
                index=t.index,
                point=self.codec.encode(t.candidate),
                score=score_of(t, self.objective),
                pending=t.phase in (TrialPhase.PENDING, TrialPhase.RUNNING),
            )
            for t in sorted(history, key=lambda t: t.index)
        ]

    def ask(self, history: Sequence[TrialRecord], count: int) -> list[Candidate]:
        if count <= 0:
            return []
        points = self.algorithm.propose(self.observations(history), next_index(history), count)
        return [self.codec.decode(p) for p in points]
