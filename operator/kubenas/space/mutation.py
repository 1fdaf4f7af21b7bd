"""Variation operators on points of a ParamSpace: one mutation, uniform crossover."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from kubenas.space.params import (
    Categorical,
    Integer,
    Param,
    ParamSpace,
    Point,
    Value,
    cardinality,
    from_unit,
    is_active,
    to_unit,
)

STEP = 0.25  # spread of a numeric mutation, as a fraction of the (log) range


def mutate(space: ParamSpace, point: Mapping[str, Value], rng: np.random.Generator) -> Point:
    """Change exactly one active parameter that has a choice: a layer's type, width or activation,
    the layer count (a layer added at the end with drawn settings, or the last one removed), or a
    hyperparameter. Parameters that become active are drawn; inactive ones are dropped."""
    mutable = [p for p in space.active(point) if cardinality(p) > 1]
    if not mutable:
        return dict(point)
    param = mutable[int(rng.integers(len(mutable)))]
    changed = dict(point)
    changed[param.name] = perturb(param, point[param.name], rng)
    return space.complete(changed, rng)


def perturb(param: Param, value: Value, rng: np.random.Generator) -> Value:
    """A different value: another choice, or a numeric step around the current value."""
    if isinstance(param, Categorical):
        others = [c for c in param.choices if c != value]
        return others[int(rng.integers(len(others)))]
    assert not isinstance(value, str)
    u = to_unit(param, value)
    for _ in range(16):
        new = from_unit(param, u + float(rng.normal(0.0, STEP)))
        if new != value:
            return new
    if isinstance(param, Integer):  # a narrow range: step to a neighbour
        up = value + (1 if param.log else param.step)
        return up if up <= param.high else value - (1 if param.log else param.step)
    return from_unit(param, float(rng.uniform()))


def crossover(
    space: ParamSpace, first: Mapping[str, Value], second: Mapping[str, Value], rng: np.random.Generator
) -> Point:
    """Each parameter from either parent at random (from the one that has it, when only one does)."""
    child: Point = {}
    for param in space.params:
        if not is_active(param, child):
            continue
        options = [p[param.name] for p in (first, second) if param.name in p]
        if options:
            child[param.name] = options[int(rng.integers(len(options)))]
    return space.complete(child, rng)
