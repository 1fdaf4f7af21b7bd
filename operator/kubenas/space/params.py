"""A flat, typed parameter space: what every search strategy works on.

A point of the space is a dict {parameter name: value}. Parameters are categorical, integer or real
(optionally log scale), and may be conditional. An ActiveIf reads one earlier parameter: it holds while
that parameter's value is at least `at_least` (layer 2's width exists only when the layer count >= 3) or
is one of `one_of` (a layer's kernel size exists only when its type is conv1d or conv2d); AllOf joins
conditions (layer 2's kernel size: count >= 3 and layers[2].type in {conv1d, conv2d}). A condition is
read only on active parameters: one whose parent is inactive is inactive too.
The kubenas SearchSpace is one such space (kubenas.space.encoding); a tabular benchmark is another.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Value = str | int | float
Point = dict[str, Value]


@dataclass(frozen=True)
class ActiveIf:
    """Active while `param` (an earlier parameter) has a value: one >= `at_least` (a numeric parameter),
    or one of `one_of` (typically a categorical's choices). Exactly one of the two is given."""

    param: str
    at_least: int | None = None
    one_of: tuple[Value, ...] | None = None

    def __post_init__(self) -> None:
        if (self.at_least is None) == (self.one_of is None):
            raise ValueError(f"condition on {self.param!r}: give exactly one of at_least and one_of")

    @property
    def refers_to(self) -> tuple[str, ...]:
        return (self.param,)

    def holds(self, point: Mapping[str, Value]) -> bool:
        value = point.get(self.param)
        if value is None:
            return False
        if self.one_of is not None:
            return value in self.one_of
        assert self.at_least is not None
        return isinstance(value, int | float) and value >= self.at_least


@dataclass(frozen=True)
class AllOf:
    """Active while every one of `conditions` holds."""

    conditions: tuple[ActiveIf, ...]

    @property
    def refers_to(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.param for c in self.conditions))

    def holds(self, point: Mapping[str, Value]) -> bool:
        return all(c.holds(point) for c in self.conditions)


When = ActiveIf | AllOf


def all_of(*conditions: When | None) -> When | None:
    """The conjunction of the given conditions (None where there are none, the one where one)."""
    flat = tuple(
        c for w in conditions if w is not None for c in (w.conditions if isinstance(w, AllOf) else (w,))
    )
    return None if not flat else flat[0] if len(flat) == 1 else AllOf(flat)


@dataclass(frozen=True)
class Categorical:
    name: str
    choices: tuple[Value, ...]
    condition: When | None = None


@dataclass(frozen=True)
class Integer:
    name: str
    low: int
    high: int
    step: int = 1
    log: bool = False
    condition: When | None = None


@dataclass(frozen=True)
class Real:
    name: str
    low: float
    high: float
    log: bool = False
    condition: When | None = None


Param = Categorical | Integer | Real


def cardinality(param: Param) -> float:
    """Number of distinct values (inf for a real range)."""
    if isinstance(param, Categorical):
        return len(param.choices)
    if isinstance(param, Integer):
        return (param.high - param.low) // param.step + 1 if not param.log else param.high - param.low + 1
    return 1.0 if param.low == param.high else math.inf


def to_unit(param: Integer | Real, value: float) -> float:
    """Position of a numeric value in [0, 1] (on the log scale when the parameter has one)."""
    lo, hi, v = float(param.low), float(param.high), float(value)
    if param.log:
        lo, hi, v = math.log(lo), math.log(hi), math.log(max(v, param.low))
    return 0.0 if hi == lo else min(1.0, max(0.0, (v - lo) / (hi - lo)))


def from_unit(param: Integer | Real, u: float) -> int | float:
    """The value at position u in [0, 1]; integers are rounded onto the step grid."""
    u = min(1.0, max(0.0, float(u)))
    lo, hi = float(param.low), float(param.high)
    x = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))) if param.log else lo + u * (hi - lo)
    if isinstance(param, Real):
        return min(param.high, max(param.low, x))
    step = 1 if param.log else param.step
    snapped = param.low + step * round((x - param.low) / step)
    return int(min(param.high - (param.high - param.low) % step, max(param.low, snapped)))


def grid_values(param: Param, points: int) -> tuple[Value, ...]:
    """A finite set of values standing for the parameter: all of them, or `points` spread evenly."""
    if isinstance(param, Categorical):
        return param.choices
    if cardinality(param) <= points:
        assert isinstance(param, Integer)
        return tuple(range(param.low, param.high + 1, param.step))
    spread = [from_unit(param, k / (points - 1)) for k in range(points)] if points > 1 else [param.low]
    return tuple(dict.fromkeys(spread))


def sample_value(param: Param, rng: np.random.Generator) -> Value:
    if isinstance(param, Categorical):
        return param.choices[int(rng.integers(len(param.choices)))]
    if isinstance(param, Integer) and not param.log:
        return param.low + param.step * int(rng.integers((param.high - param.low) // param.step + 1))
    if isinstance(param, Integer):  # log: uniform in log(low)..log(high + 1), floored
        value = math.exp(rng.uniform(math.log(param.low), math.log(param.high + 1)))
        return min(param.high, int(value))
    return from_unit(param, float(rng.uniform()))


def is_active(param: Param, point: Mapping[str, Value]) -> bool:
    """Whether the parameter exists, given the values decided so far (the earlier active ones)."""
    return param.condition is None or param.condition.holds(point)


def contains(param: Param, value: Value) -> bool:
    if isinstance(param, Categorical):
        return value in param.choices
    if isinstance(value, str) or not param.low <= value <= param.high:
        return False
    if isinstance(param, Integer):
        return isinstance(value, int) and (param.log or (value - param.low) % param.step == 0)
    return True


@dataclass(frozen=True)
class ParamSpace:
    """Parameters in decision order: a condition refers only to an earlier parameter."""

    params: tuple[Param, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for param in self.params:
            if param.name in seen:
                raise ValueError(f"parameter {param.name!r} appears twice")
            for parent in () if param.condition is None else param.condition.refers_to:
                if parent not in seen:
                    raise ValueError(f"{param.name}: condition on {parent!r}, not an earlier one")
            seen.add(param.name)

    def by_name(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def active(self, point: Mapping[str, Value]) -> list[Param]:
        """The parameters that exist for this point: conditions read the point's values of the earlier
        active parameters (a value the point holds for an inactive parameter counts as absent)."""
        seen: dict[str, Value] = {}
        out = []
        for param in self.params:
            if is_active(param, seen):
                out.append(param)
                if param.name in point:
                    seen[param.name] = point[param.name]
        return out

    def complete(self, point: Mapping[str, Value], rng: np.random.Generator) -> Point:
        """Keep the point's values of active parameters, draw the missing ones, drop inactive ones."""
        out: Point = {}
        for param in self.params:
            if not is_active(param, out):
                continue
            value = point.get(param.name)
            out[param.name] = (
                value if value is not None and contains(param, value) else sample_value(param, rng)
            )
        return out

    def sample(self, rng: np.random.Generator) -> Point:
        return self.complete({}, rng)

    def contains(self, point: Mapping[str, Value]) -> bool:
        """Whether the point has exactly the active parameters, each with a value in its domain."""
        active = self.active(point)
        return set(point) == {p.name for p in active} and all(contains(p, point[p.name]) for p in active)


def key_of(point: Mapping[str, Value]) -> tuple[tuple[str, Value], ...]:
    """A hashable, order-independent form of a point."""
    return tuple(sorted(point.items()))


def unit_vector(space: ParamSpace, point: Mapping[str, Value], fill: float = 0.5) -> np.ndarray:
    """One coordinate per parameter in [0, 1]: a categorical's bin centre, `fill` where inactive."""
    return np.array([_unit(p, point.get(p.name), fill) for p in space.params])


def _unit(param: Param, value: Value | None, fill: float) -> float:
    if value is None or (isinstance(param, Categorical) and value not in param.choices):
        return fill
    if isinstance(param, Categorical):
        return (param.choices.index(value) + 0.5) / len(param.choices)
    return fill if isinstance(value, str) else to_unit(param, value)


def from_unit_vector(space: ParamSpace, x: Sequence[float]) -> Point:
    """The point a unit vector stands for (categoricals by bin, inactive coordinates ignored)."""
    out: Point = {}
    for param, u in zip(space.params, x, strict=True):
        if not is_active(param, out):
            continue
        if isinstance(param, Categorical):
            out[param.name] = param.choices[
                min(len(param.choices) - 1, int(max(0.0, u) * len(param.choices)))
            ]
        else:
            out[param.name] = from_unit(param, u)
    return out
