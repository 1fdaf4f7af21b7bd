"""Regularized (aging) evolution (Real et al., 2019), asynchronous, rebuilt from the history.

The first `populationSize` proposals are random. After that, the population is the `populationSize`
most recent successful trials (by trial index: the oldest die, whatever their score); a child is the
winner of a tournament among `sampleSize` of them, with exactly one mutation, and optionally first
crossed over with a second tournament winner.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
from kubenas_trainer.spec import CamelModel
from pydantic import Field, model_validator

from kubenas.seeds import rng_for
from kubenas.space.mutation import crossover, mutate
from kubenas.space.params import Point
from kubenas.strategies.searcher import Observation, Searcher, SearcherStrategy


class EvolutionSettings(CamelModel):
    population_size: int = Field(default=20, ge=2, le=100000, description="Living population.")
    sample_size: int = Field(default=5, ge=1, description="Tournament size.")
    crossover_probability: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Chance that a child has two parents."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.sample_size > self.population_size:
            raise ValueError(
                f"sampleSize must be <= populationSize (sampleSize={self.sample_size}, "
                f"populationSize={self.population_size})"
            )
        return self


def tournament(population: Sequence[Observation], size: int, rng: np.random.Generator) -> Observation:
    """The best of `size` members drawn without replacement (the younger among equals)."""
    picks = rng.choice(len(population), size=min(size, len(population)), replace=False)
    return max((population[int(i)] for i in picks), key=lambda o: (o.score, o.index))


class EvolutionSearcher(Searcher):
    Settings = EvolutionSettings

    def propose(self, observations: Sequence[Observation], start: int, count: int) -> list[Point]:
        settings = self.settings
        assert isinstance(settings, EvolutionSettings)
        scored = sorted((o for o in observations if o.score is not None), key=lambda o: o.index)
        population = scored[-settings.population_size :]
        out: list[Point] = []
        for offset, index in enumerate(range(start, start + count)):
            rng = rng_for(self.seed, index)
            seeding = len(observations) + offset < settings.population_size
            if seeding or not population:
                out.append(self.space.sample(rng))
                continue
            parent = tournament(population, settings.sample_size, rng).point
            if rng.uniform() < settings.crossover_probability:
                other = tournament(population, settings.sample_size, rng).point
                parent = crossover(self.space, parent, other, rng)
            out.append(mutate(self.space, parent, rng))
        return out


class Evolution(SearcherStrategy):
    name = "evolution"
    searcher = EvolutionSearcher
