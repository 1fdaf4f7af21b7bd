"""Grid search over the discretised space, in a seeded order, finishing when every point was proposed.

Categorical and small integer parameters keep all their values; ranges are cut into `pointsPerRange`
evenly spaced values (on the log scale where they have one). Conditional parameters count only where
they exist, so a grid over 1..3 layers holds the 1-layer nets, then the 2-layer nets, and so on.
The grid is never materialised: trial index i maps to grid point perm(i), perm a seeded bijection.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from kubenas_trainer.spec import CamelModel
from pydantic import Field

from kubenas.space.params import Param, ParamSpace, Point, Value, grid_values
from kubenas.strategies.searcher import Observation, Searcher, SearcherStrategy, rng_for


class GridSettings(CamelModel):
    points_per_range: int = Field(default=3, ge=2, le=1000, description="Values taken from each range.")
    shuffle: bool = Field(default=True, description="Visit the grid in a seeded random order.")


class Grid:
    """The finite grid of a ParamSpace, indexed 0 .. size-1 (blocks per value of the condition params)."""

    def __init__(self, space: ParamSpace, points: int) -> None:
        self.space = space
        self.values = {p.name: grid_values(p, points) for p in space.params}
        parents = list(dict.fromkeys(p.condition.param for p in space.params if p.condition is not None))
        self.parents = parents
        self.blocks: list[tuple[dict[str, Value], list[Param], int]] = []
        for combo in itertools.product(*(self.values[name] for name in parents)):
            fixed = dict(zip(parents, combo, strict=True))
            free = [p for p in space.active(fixed) if p.name not in fixed]
            self.blocks.append((fixed, free, math.prod(len(self.values[p.name]) for p in free)))
        self.size = sum(size for _, _, size in self.blocks)

    def point(self, position: int) -> Point:
        for fixed, free, size in self.blocks:
            if position < size:
                point: Point = dict(fixed)
                for param in reversed(free):
                    choices = self.values[param.name]
                    position, digit = divmod(position, len(choices))
                    point[param.name] = choices[digit]
                return {p.name: point[p.name] for p in self.space.active(point)}
            position -= size
        raise IndexError(position)


def affine_permutation(size: int, rng: np.random.Generator) -> tuple[int, int]:
    """(a, b) such that i -> (a*i + b) mod size is a bijection of range(size)."""
    if size <= 1:
        return 1, 0
    a = 1 + int(rng.integers(size - 1))
    while math.gcd(a, size) != 1:
        a += 1
    return a, int(rng.integers(size))


class GridSearcher(Searcher):
    Settings = GridSettings

    def propose(self, observations: Sequence[Observation], start: int, count: int) -> list[Point]:
        settings = self.settings
        assert isinstance(settings, GridSettings)
        grid = Grid(self.space, settings.points_per_range)
        a, b = affine_permutation(grid.size, rng_for(self.seed, 0, salt=7)) if settings.shuffle else (1, 0)
        end = min(start + count, grid.size)
        return [grid.point((a * i + b) % grid.size) for i in range(start, end)]


class GridSearch(SearcherStrategy):
    name = "grid"
    searcher = GridSearcher
