"""MIHA's parts that stand alone: the clone mutation and a fitness that batch size cannot bias.

MIHA (run-up, cycles of mutated clones trained from one checkpoint, the fittest continued) needs
checkpoint resume in the trainer; until then only these pieces exist. Its paper ranks clones by their
summed training loss, which is biased twice: training loss rewards overfitting, and a sum over
batches scales with the number of batches, i.e. inversely with the batch size that is one of the
mutated hyperparameters. Here a clone's fitness is its mean validation loss per example.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from kubenas.space.mutation import perturb
from kubenas.space.params import ParamSpace, Point, Value, cardinality

# What a MIHA clone may change: the optimizer, one layer's activation, the batch size, the learning rate.
CLONE_MUTABLE = (
    "hyperparameters.optimizer",
    ".activation",
    "hyperparameters.batchSize",
    "hyperparameters.learningRate",
)


def clone_mutation(space: ParamSpace, point: Mapping[str, Value], rng: np.random.Generator) -> Point:
    """The point with one MIHA mutation (the architecture's shape stays, so weights carry over)."""
    mutable = [p for p in space.active(point) if p.name.endswith(CLONE_MUTABLE) and cardinality(p) > 1]
    clone = dict(point)
    if mutable:
        param = mutable[int(rng.integers(len(mutable)))]
        clone[param.name] = perturb(param, point[param.name], rng)
    return clone


@dataclass(frozen=True)
class ValidationPass:
    """A clone's validation losses: the mean loss of each batch, and each batch's size."""

    batch_losses: Sequence[float]
    batch_sizes: Sequence[int]


def fitness(evaluation: ValidationPass) -> float:
    """Minus the mean validation loss per example: higher is fitter, however the data was batched."""
    losses = np.asarray(evaluation.batch_losses, dtype=float)
    sizes = np.asarray(evaluation.batch_sizes, dtype=float)
    if losses.shape != sizes.shape or not len(sizes) or sizes.min() < 1:
        raise ValueError("need one loss per batch and batch sizes >= 1")
    return -float((losses * sizes).sum() / sizes.sum())


def fittest(clones: Mapping[str, ValidationPass]) -> str:
    """The clone to continue: the fittest (the first named among equals)."""
    return max(sorted(clones), key=lambda name: fitness(clones[name]))
