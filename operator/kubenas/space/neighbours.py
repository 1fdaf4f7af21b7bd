"""A point's neighbourhood (the points one decision away) on a discretised view of the space.

A numeric range is seen as `bins` grid values (space.params.grid_values); a point's cell names, for each
parameter, its categorical value or the index of the nearest grid value. Cells make "already evaluated"
robust to the rounding a candidate's values go through (a learning rate kept to 6 significant digits
still falls in the same cell). A neighbour changes one active parameter: a categorical to any other
choice, a numeric to the grid value one step up or down. Parameters that become active (a layer added)
are drawn from the generator the caller passes, so a trial's neighbourhood is a fixed, seeded list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from kubenas.space.params import Categorical, ParamSpace, Point, Value, grid_values, to_unit

Cell = tuple[tuple[str, Value], ...]


@dataclass(frozen=True)
class Neighbourhoods:
    """Cells and neighbours of the points of `space`, numeric ranges cut into `bins` values."""

    space: ParamSpace
    bins: int = 8

    def grid(self, name: str) -> tuple[Value, ...]:
        return grid_values(self.space.by_name(name), self.bins)

    def position(self, name: str, value: Value) -> int:
        """The index of the grid value nearest to `value` (on the parameter's unit, log or linear, scale)."""
        param = self.space.by_name(name)
        assert not isinstance(param, Categorical) and not isinstance(value, str)
        u = to_unit(param, value)
        return int(np.argmin([abs(to_unit(param, float(g)) - u) for g in self.grid(name)]))

    def cell(self, point: Mapping[str, Value]) -> Cell:
        out = []
        for param in self.space.active(point):
            value = point.get(param.name)
            if value is None:
                continue
            if isinstance(param, Categorical):
                out.append((param.name, value))
            else:
                out.append((param.name, self.position(param.name, value)))
        return tuple(sorted(out))

    def neighbours(self, point: Mapping[str, Value], rng: np.random.Generator) -> list[Point]:
        """Every point one decision away, in the space's parameter order."""
        out: list[Point] = []
        for param in self.space.active(point):
            value = point.get(param.name)
            if value is None:
                continue
            if isinstance(param, Categorical):
                values = [c for c in param.choices if c != value]
            else:
                grid, at = self.grid(param.name), self.position(param.name, value)
                values = [grid[j] for j in (at - 1, at + 1) if 0 <= j < len(grid) and grid[j] != value]
            for new in values:
                changed = dict(point)
                changed[param.name] = new
                out.append(self.space.complete(changed, rng))
        return out
