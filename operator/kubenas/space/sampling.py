"""Draw candidates from a search space with an explicit random generator (so callers control seeding)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
from kubenas_trainer.spec import Architecture, Candidate, Hyperparameters, Layer

from kubenas.api.space import FloatDomain, IntDomain, SearchSpace

T = TypeVar("T")


def sample_int(domain: IntDomain, rng: np.random.Generator) -> int:
    choices = domain.choices()
    if choices is not None:
        return int(choices[rng.integers(len(choices))])
    assert domain.min is not None and domain.max is not None
    value = math.exp(rng.uniform(math.log(domain.min), math.log(domain.max + 1)))
    return min(domain.max, int(value))


def sample_float(domain: FloatDomain, rng: np.random.Generator) -> float:
    if domain.values is not None:
        return float(domain.values[rng.integers(len(domain.values))])
    assert domain.min is not None and domain.max is not None
    if domain.log:
        return float(math.exp(rng.uniform(math.log(domain.min), math.log(domain.max))))
    return float(rng.uniform(domain.min, domain.max))


def _pick(options: Sequence[T], rng: np.random.Generator) -> T:
    return options[int(rng.integers(len(options)))]


def sample_candidate(space: SearchSpace, rng: np.random.Generator) -> Candidate:
    layers_space = space.layers
    layers = [
        Layer(
            type=_pick(layers_space.types, rng),
            units=sample_int(layers_space.units, rng),
            activation=_pick(layers_space.activations, rng),
            dropout=round(sample_float(layers_space.dropout, rng), 4),
        )
        for _ in range(sample_int(layers_space.count, rng))
    ]
    hp = space.hyperparameters
    return Candidate(
        architecture=Architecture(layers=layers),
        hyperparameters=Hyperparameters(
            learning_rate=float(f"{sample_float(hp.learning_rate, rng):.6g}"),
            optimizer=_pick(hp.optimizers, rng),
            batch_size=sample_int(hp.batch_size, rng),
        ),
    )
