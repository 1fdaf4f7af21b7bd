"""Data sets a trial trains on: loaded by name, path or URI, then split and normalised per experiment.

A source returns a Dataset (raw arrays in their natural per-sample shape: features (F,), a sequence
(L, C) or an image (C, H, W)); split_dataset turns it into the Split the trainer uses. The split
depends on training only (splitSeed, fractions, data set, normalisation), never on a trial's seed, so
every trial of an experiment is validated on the same samples; Split.fingerprint names it.
Inputs are standardised with training-split statistics as training.normalization says (normalization.py).
"""

from __future__ import annotations

from kubenas_trainer.data.dataset import Dataset, Indices, Split, split_dataset
from kubenas_trainer.data.sources import load_dataset
from kubenas_trainer.spec import Training

__all__ = ["Dataset", "Indices", "Split", "load_dataset", "load_split", "split_dataset"]


def load_split(training: Training) -> Split:
    """The experiment's train/validation(/test) split of training.dataset (seeded by training.splitSeed),
    normalised on the training part as training.normalization says."""
    return split_dataset(
        load_dataset(training),
        training.validation_fraction,
        training.test_fraction,
        training.split_seed,
        training.normalization,
    )
