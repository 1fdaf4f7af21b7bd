"""Data sets a trial trains on: loaded by name, path or URI, then split and normalised by seed.

A source returns a Dataset (raw arrays in their natural per-sample shape: features (F,), a sequence
(L, C) or an image (C, H, W)); split_dataset turns it into the Split the trainer uses.
"""

from __future__ import annotations

from kubenas_trainer.data.dataset import Dataset, Split, split_dataset
from kubenas_trainer.data.sources import load_dataset
from kubenas_trainer.spec import Training

__all__ = ["Dataset", "Split", "load_dataset", "load_split", "split_dataset"]


def load_split(training: Training, seed: int) -> Split:
    """The seeded train/validation(/test) split of training.dataset, normalised on the training part."""
    return split_dataset(load_dataset(training), training.validation_fraction, training.test_fraction, seed)
