"""MIHA's fitness ranks clones by validation loss whatever their batch size; its clone mutation."""

from collections.abc import Sequence

import numpy as np
import pytest
from kubenas.api import SearchSpace
from kubenas.space.encoding import CandidateCodec
from kubenas.strategies.miha import ValidationPass, clone_mutation, fitness, fittest


def batched(per_example: np.ndarray, batch_size: int) -> ValidationPass:
    """The validation pass of per-example losses cut into batches (the last one may be short)."""
    batches = [per_example[i : i + batch_size] for i in range(0, len(per_example), batch_size)]
    return ValidationPass([float(b.mean()) for b in batches], [len(b) for b in batches])


def summed(evaluation: ValidationPass) -> float:
    """The original MIHA's fitness: minus the sum of the batches' losses."""
    return -float(sum(evaluation.batch_losses))


def ranking(clones: Sequence[ValidationPass], score: object) -> list[int]:
    return sorted(range(len(clones)), key=lambda i: -score(clones[i]))  # type: ignore[operator]


def test_fitness_ranks_clones_the_same_whatever_their_batch_size() -> None:
    rng = np.random.default_rng(0)
    losses = [rng.gamma(2.0, scale, size=500) for scale in (0.30, 0.25, 0.20, 0.15)]  # clone 3 best
    truth = [3, 2, 1, 0]
    for _ in range(20):
        sizes = rng.choice([16, 32, 64, 128, 256], size=4)
        clones = [batched(loss, int(b)) for loss, b in zip(losses, sizes, strict=True)]
        assert ranking(clones, fitness) == truth
        assert fitness(clones[0]) == pytest.approx(-losses[0].mean())
    # the original summed loss does not: the worst clone wins with 16x larger batches
    biased = [batched(losses[0], 256), *(batched(loss, 16) for loss in losses[1:])]
    assert ranking(biased, summed)[0] == 0 and ranking(biased, fitness) == truth


def test_fittest_names_the_lowest_validation_loss() -> None:
    clones = {"c-0": ValidationPass([0.5, 0.7], [64, 36]), "c-1": ValidationPass([0.55], [100])}
    assert fittest(clones) == "c-1"  # 0.55 < (0.5*64 + 0.7*36)/100 = 0.572
    with pytest.raises(ValueError, match="one loss per batch"):
        fitness(ValidationPass([0.5], [1, 2]))


def test_a_clone_changes_one_trainable_choice_and_keeps_the_shape() -> None:
    space = SearchSpace.model_validate(
        {
            "layers": {
                "count": {"min": 1, "max": 4},
                "units": {"values": [8, 16]},
                "activations": ["relu", "tanh"],
            },
            "hyperparameters": {"optimizers": ["adam", "sgd"], "batchSize": {"values": [16, 32]}},
        }
    )
    codec = CandidateCodec(space)
    rng = np.random.default_rng(1)
    changed = set()
    for _ in range(200):
        point = codec.space.sample(rng)
        clone = clone_mutation(codec.space, point, rng)
        diff = [k for k in point if clone[k] != point[k]]
        assert len(diff) == 1 and clone.keys() == point.keys()
        changed.add(diff[0].rsplit(".", 1)[-1])
    assert changed == {"optimizer", "activation", "batchSize", "learningRate"}
