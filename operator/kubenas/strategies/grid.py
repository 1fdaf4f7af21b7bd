"""Grid search over the discretised space, in a seeded order, finishing when every point was proposed.

Categorical and small integer parameters keep all their values; ranges are cut into `pointsPerRange`
evenly spaced values (on the log scale where they have one). Conditional parameters count only where
they exist, so a grid over 1..3 layers holds the 1-layer nets, then the 2-layer nets, and so on, and a
dense layer is not repeated once per kernel size (kernelSize exists only on conv layers).
The grid is never materialised: trial index i maps to grid point perm(i), perm a seeded bijection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from kubenas_trainer.spec import CamelModel
from pydantic import Field

from kubenas.seeds import rng_for
from kubenas.space.params import ParamSpace, Point, Value, grid_values, is_active
from kubenas.strategies.searcher import Observation, Searcher, SearcherStrategy


class _Absent:
    """Stands in a counting state for a parameter the point does not have."""


_ABSENT = _Absent()
State = tuple[Value | _Absent, ...]


class GridSettings(CamelModel):
    points_per_range: int = Field(default=3, ge=2, le=1000, description="Values taken from each range.")
    shuffle: bool = Field(default=True, description="Visit the grid in a seeded random order.")


class Grid:
    """The finite grid of a ParamSpace, indexed 0 .. size-1 in lexicographic order of the parameters.

    Counting is a dynamic programme over the parameters in space order: how many completions follow
    parameter k depends only on the values of the earlier parameters that a condition from k on reads
    (for the kubenas space: the layer count and the current layer's type), so few states are counted
    however many grid points there are."""

    def __init__(self, space: ParamSpace, points: int) -> None:
        self.space = space
        self.values = {p.name: grid_values(p, points) for p in space.params}
        params = space.params
        index = {p.name: k for k, p in enumerate(params)}
        self.parents = {name for p in params if p.condition is not None for name in p.condition.refers_to}
        # live[k]: the parameters before k whose values a condition at k or later reads.
        self.live: list[tuple[str, ...]] = [()] * (len(params) + 1)
        read: set[str] = set()
        for k in reversed(range(len(params))):
            if (condition := params[k].condition) is not None:
                read.update(condition.refers_to)
            self.live[k] = tuple(sorted((n for n in read if index[n] < k), key=index.__getitem__))
        self.counts: list[dict[State, int]] = [{} for _ in range(len(params) + 1)]
        self.size = self._count()

    def _state(self, k: int, decided: dict[str, Value]) -> State:
        return tuple(decided.get(name, _ABSENT) for name in self.live[k])

    def _decided(self, k: int, state: State) -> dict[str, Value]:
        return {n: v for n, v in zip(self.live[k], state, strict=True) if not isinstance(v, _Absent)}

    def _successors(self, k: int, state: State) -> list[tuple[int, State]]:
        """(how many values lead there, next state) for parameter k from `state`."""
        param, decided = self.space.params[k], self._decided(k, state)
        if not is_active(param, decided):
            return [(1, self._state(k + 1, decided))]
        values = self.values[param.name]
        if param.name not in self.parents:
            return [(len(values), self._state(k + 1, decided))]
        return [(1, self._state(k + 1, {**decided, param.name: v})) for v in values]

    def _count(self) -> int:
        """Fill counts[k][state] (grid points completing a state at k) for every reachable state."""
        n = len(self.space.params)
        reachable: list[set[State]] = [set() for _ in range(n + 1)]
        reachable[0].add(())
        for k in range(n):
            for state in reachable[k]:
                reachable[k + 1].update(nxt for _, nxt in self._successors(k, state))
        self.counts[n] = {state: 1 for state in reachable[n]}
        for k in reversed(range(n)):
            for state in reachable[k]:
                self.counts[k][state] = sum(
                    m * self.counts[k + 1][nxt] for m, nxt in self._successors(k, state)
                )
        return self.counts[0][()]

    def point(self, position: int) -> Point:
        if not 0 <= position < self.size:
            raise IndexError(position)
        point: Point = {}
        state: State = ()
        for k, param in enumerate(self.space.params):
            decided = self._decided(k, state)
            if is_active(param, decided):
                values = self.values[param.name]
                if param.name not in self.parents:
                    digit, position = divmod(position, self.counts[k + 1][self._state(k + 1, decided)])
                    point[param.name] = values[digit]
                else:
                    for value in values:
                        below = self.counts[k + 1][self._state(k + 1, {**decided, param.name: value})]
                        if position < below:
                            point[param.name] = value
                            break
                        position -= below
            if param.name in point:
                decided[param.name] = point[param.name]
            state = self._state(k + 1, decided)
        return point


def affine_permutation(size: int, rng: np.random.Generator) -> tuple[int, int]:
    """(a, b) such that i -> (a*i + b) mod size is a bijection of range(size)."""
    if size <= 1:
        return 1, 0
    a = 1 + _below(size - 1, rng)
    while math.gcd(a, size) != 1:
        a += 1
    return a, _below(size, rng)


def _below(bound: int, rng: np.random.Generator) -> int:
    """A uniform integer in [0, bound): numpy's below 2^63 (as grids have always been ordered), else
    rejection sampling on random bits, since a large space's grid outgrows int64."""
    if bound <= 2**63 - 1:
        return int(rng.integers(bound))
    bits = bound.bit_length()
    while True:
        draw = int.from_bytes(rng.bytes((bits + 7) // 8), "big") >> (-bits % 8)
        if draw < bound:
            return draw


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
