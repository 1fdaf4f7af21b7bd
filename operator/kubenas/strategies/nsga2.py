"""Multi-objective search: NSGA-II (Deb et al., 2002), steady-state, rebuilt from the history.

The objectives are validation metrics, e.g. accuracy against trainingSeconds. The first
`populationSize` proposals are random; after that the population is the best `populationSize`
successful trials by non-dominated rank, then crowding distance (the NSGA-II survivor selection), and
each child comes from binary tournaments on (rank, crowding): crossed over with a second parent with
`crossoverProbability`, then one mutation. `pareto_front` gives the non-dominated trials, for a status
that shows the front instead of a single best.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
from kubenas_trainer.spec import CamelModel, Candidate
from pydantic import Field, model_validator

from kubenas.api.experiment import MetricGoal
from kubenas.engine.records import TrialRecord
from kubenas.engine.score import score_vector
from kubenas.seeds import rng_for
from kubenas.space.encoding import CandidateCodec
from kubenas.space.mutation import crossover, mutate
from kubenas.space.params import ParamSpace, Point
from kubenas.strategies.base import Strategy, next_index


class NSGA2Settings(CamelModel):
    objectives: list[MetricGoal] = Field(
        default=[MetricGoal(metric="accuracy"), MetricGoal(metric="trainingSeconds")],
        description="Two or more metrics to trade off.",
    )
    population_size: int = Field(default=20, ge=2, le=100000, description="Surviving population.")
    crossover_probability: float = Field(default=0.5, ge=0.0, le=1.0, description="Chance of two parents.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        metrics = [o.metric for o in self.objectives]
        if len(metrics) < 2 or len(set(metrics)) != len(metrics):
            raise ValueError(f"objectives must name two or more different metrics (got {metrics})")
        return self


@dataclass(frozen=True)
class Scored:
    index: int
    point: Point
    scores: tuple[float, ...]  # higher is better in every coordinate


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(x > y for x, y in zip(a, b, strict=True))


def fronts(items: Sequence[Scored]) -> list[list[Scored]]:
    """Non-dominated sorting: the first front dominates the second, and so on."""
    remaining, out = list(items), []
    while remaining:
        front = [a for a in remaining if not any(dominates(b.scores, a.scores) for b in remaining)]
        out.append(front)
        taken = {m.index for m in front}
        remaining = [a for a in remaining if a.index not in taken]
    return out


def crowding(front: Sequence[Scored]) -> dict[int, float]:
    """Crowding distance of each member (by index): larger where the front is sparse."""
    distance = {m.index: 0.0 for m in front}
    for k in range(len(front[0].scores)):
        ordered = sorted(front, key=lambda m: (m.scores[k], m.index))
        span = ordered[-1].scores[k] - ordered[0].scores[k] or 1.0
        distance[ordered[0].index] = distance[ordered[-1].index] = float("inf")
        for left, mid, right in zip(ordered, ordered[1:], ordered[2:], strict=False):
            distance[mid.index] += (right.scores[k] - left.scores[k]) / span
    return distance


def survivors(items: Sequence[Scored], size: int) -> list[tuple[Scored, int, float]]:
    """NSGA-II selection: (member, rank, crowding) of the best `size` by rank, then crowding."""
    out: list[tuple[Scored, int, float]] = []
    for rank, front in enumerate(fronts(items)):
        dist = crowding(front)
        ranked = sorted(front, key=lambda m: (-dist[m.index], m.index))
        out += [(m, rank, dist[m.index]) for m in ranked[: size - len(out)]]
        if len(out) >= size:
            break
    return out


class NSGA2Searcher:
    """Steady-state NSGA-II on a ParamSpace; pure given (seed, scored points, proposal count)."""

    def __init__(self, space: ParamSpace, seed: int, settings: NSGA2Settings) -> None:
        self.space, self.seed, self.settings = space, seed, settings

    def propose(self, scored: Sequence[Scored], seen: int, start: int, count: int) -> list[Point]:
        population = survivors(scored, self.settings.population_size)
        out: list[Point] = []
        for offset, index in enumerate(range(start, start + count)):
            rng = rng_for(self.seed, index)
            if seen + offset < self.settings.population_size or not population:
                out.append(self.space.sample(rng))
                continue
            parent = self._tournament(population, rng)
            if rng.uniform() < self.settings.crossover_probability:
                parent = crossover(self.space, parent, self._tournament(population, rng), rng)
            out.append(mutate(self.space, parent, rng))
        return out

    @staticmethod
    def _tournament(population: Sequence[tuple[Scored, int, float]], rng: np.random.Generator) -> Point:
        a, b = (population[int(i)] for i in rng.integers(len(population), size=2))
        return min((a, b), key=lambda m: (m[1], -m[2], m[0].index))[0].point


def pareto_front(trials: Sequence[TrialRecord], goals: Sequence[MetricGoal]) -> list[TrialRecord]:
    """The succeeded trials no other trial dominates on the goals, in index order."""
    scored = [(t, s) for t in trials if (s := score_vector(t, goals)) is not None]
    return sorted(
        (t for t, s in scored if not any(dominates(other, s) for _, other in scored)), key=lambda t: t.index
    )


class NSGA2(Strategy):
    name = "nsga2"
    Settings = NSGA2Settings

    def setup(self) -> None:
        assert isinstance(self.settings, NSGA2Settings)
        self.codec = CandidateCodec(self.space)
        self.algorithm = NSGA2Searcher(self.codec.space, self.seed, self.settings)

    def ask(self, history: Sequence[TrialRecord], count: int) -> list[Candidate]:
        if count <= 0:
            return []
        assert isinstance(self.settings, NSGA2Settings)
        goals = self.settings.objectives
        scored = [
            Scored(t.index, self.codec.encode(t.candidate), s)
            for t in sorted(history, key=lambda t: t.index)
            if (s := score_vector(t, goals)) is not None
        ]
        points = self.algorithm.propose(scored, len(history), next_index(history), count)
        return [self.codec.decode(p) for p in points]

    def pareto_front(self, history: Sequence[TrialRecord]) -> list[TrialRecord]:
        assert isinstance(self.settings, NSGA2Settings)
        return pareto_front(history, self.settings.objectives)
