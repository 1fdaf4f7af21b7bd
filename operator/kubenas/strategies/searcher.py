"""Search algorithms on a ParamSpace, and the adapter that makes one a kubenas Strategy.

A Searcher sees the history as Observations (points with a score where higher is better) and
proposes points; it keeps no state between calls, so the same observations give the same proposals.
The benchmarks drive searchers directly on their own ParamSpace.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from kubenas_trainer.spec import CamelModel, Candidate

from kubenas.api.status import TrialPhase
from kubenas.engine.records import TrialRecord
from kubenas.engine.score import epoch_scores, score
from kubenas.seeds import rng_for
from kubenas.space.encoding import CandidateCodec
from kubenas.space.params import ParamSpace, Point
from kubenas.strategies.base import NoSettings, Strategy, next_index


@dataclass(frozen=True)
class Observation:
    """One recorded trial: its point, its score (higher is better) once it has one, and its score after
    each epoch where the backend reported them (multi-fidelity searchers read those)."""

    index: int
    point: Point
    score: float | None = None
    pending: bool = False
    curve: tuple[float, ...] = ()


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
                score=score(t, self.objective),
                pending=t.phase in (TrialPhase.PENDING, TrialPhase.RUNNING),
                curve=epoch_scores(t, self.objective),
            )
            for t in sorted(history, key=lambda t: t.index)
        ]

    def ask(self, history: Sequence[TrialRecord], count: int) -> list[Candidate]:
        if count <= 0:
            return []
        points = self.algorithm.propose(self.observations(history), next_index(history), count)
        return [self.codec.decode(p) for p in points]
