"""Draw candidates from a search space with an explicit random generator (so callers control seeding).

Fields added after the first release draw a random number only when they offer more than one choice,
and are left unset (None) at their "off" value, so older manifests keep proposing the same candidates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
from kubenas_trainer.spec import (
    CONV_LAYERS,
    RECURRENT_LAYERS,
    Architecture,
    Candidate,
    ClipMode,
    Hyperparameters,
    Layer,
    LayerType,
    Normalization,
    Pooling,
    Schedule,
)

from kubenas.api.space import FloatDomain, HyperparameterSpace, IntDomain, LayersSpace, SearchSpace

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


def _choose(options: Sequence[T], rng: np.random.Generator) -> T:
    """Like _pick, but a single option consumes no randomness."""
    return options[0] if len(set(options)) == 1 else _pick(options, rng)


def _int(domain: IntDomain, rng: np.random.Generator) -> int:
    lo, hi = domain.bounds()
    return lo if lo == hi else sample_int(domain, rng)


def _float(domain: FloatDomain, rng: np.random.Generator) -> float:
    lo, hi = domain.bounds()
    return float(lo) if lo == hi else round(sample_float(domain, rng), 6)


def _layer(space: LayersSpace, rng: np.random.Generator) -> Layer:
    kind: LayerType = _pick(space.types, rng)
    units = sample_int(space.units, rng)
    activation = _pick(space.activations, rng)
    dropout = round(sample_float(space.dropout, rng), 4)
    kernel = pooling = bidirectional = None
    if kind in CONV_LAYERS:
        kernel = _int(space.kernel_sizes, rng)
        chosen_pooling = _choose(space.pooling, rng)
        pooling = None if chosen_pooling is Pooling.NONE else chosen_pooling
    if kind in RECURRENT_LAYERS:
        bidirectional = _choose(space.bidirectional, rng) or None
    normalization = _choose(space.normalization, rng)
    return Layer(
        type=kind,
        units=units,
        activation=activation,
        dropout=dropout,
        kernel_size=kernel,
        pooling=pooling,
        bidirectional=bidirectional,
        normalization=None if normalization is Normalization.NONE else normalization,
        residual=_choose(space.residual, rng) or None,
    )


def _hyperparameters(hp: HyperparameterSpace, rng: np.random.Generator) -> Hyperparameters:
    learning_rate = float(f"{sample_float(hp.learning_rate, rng):.6g}")
    optimizer = _pick(hp.optimizers, rng)
    batch_size = sample_int(hp.batch_size, rng)
    schedule = _choose(hp.schedules, rng)
    clip = _float(hp.gradient_clip, rng)
    clip_mode = _choose(hp.gradient_clip_modes, rng) if clip > 0 else None
    return Hyperparameters(
        learning_rate=learning_rate,
        optimizer=optimizer,
        batch_size=batch_size,
        weight_decay=_float(hp.weight_decay, rng) or None,
        momentum=None if hp.momentum is None else _float(hp.momentum, rng),
        schedule=None if schedule is Schedule.CONSTANT else schedule,
        warmup_epochs=_int(hp.warmup_epochs, rng) or None,
        gradient_clip=clip or None,
        gradient_clip_mode=None if clip_mode in (None, ClipMode.NORM) else clip_mode,
        label_smoothing=_float(hp.label_smoothing, rng) or None,
        epochs=None if hp.epochs is None else _int(hp.epochs, rng),
    )


def sample_candidate(space: SearchSpace, rng: np.random.Generator) -> Candidate:
    layers = [_layer(space.layers, rng) for _ in range(sample_int(space.layers.count, rng))]
    return Candidate(
        architecture=Architecture(layers=layers),
        hyperparameters=_hyperparameters(space.hyperparameters, rng),
    )
