"""Data sets a trial trains on: loaded by name, path or URI, then split and normalised per experiment.

A source returns a Dataset (raw arrays in their natural per-sample shape: features (F,), a sequence
(L, C) or an image (C, H, W)); split_dataset turns it into the Split the trainer uses. The split
depends on training only (splitSeed, fractions, data set, normalisation), never on a trial's seed, so
every trial of an experiment is validated on the same samples; Split.fingerprint names it.
Inputs are standardised with training-split statistics as training.normalization says (normalization.py).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from kubenas_trainer.data.dataset import Dataset, Indices, Split, split_dataset
from kubenas_trainer.data.sources import load_dataset
from kubenas_trainer.spec import Training

__all__ = ["Dataset", "Indices", "Split", "load_dataset", "load_split", "split_dataset"]

# A process that runs many trials (kubenas_trainer.worker) reads its experiment's data once.
SPLIT_CACHE_SIZE = 2
_SPLIT_FIELDS = {
    "dataset",
    "validation_fraction",
    "test_fraction",
    "split_seed",
    "normalization",
    "task",
    "target",
    "sequence_length",
}
_splits: OrderedDict[str, Split] = OrderedDict()


def split_key(training: Training) -> str:
    """What a split depends on: the fields of training that shape it and, for a local file, its size and
    modification time (a file rewritten between trials is read again)."""
    key = training.model_dump_json(include=_SPLIT_FIELDS)
    path = Path(training.dataset.removeprefix("file://"))
    if not training.dataset.startswith("s3://") and path.exists():
        stat = path.stat()
        key += f";{stat.st_size};{stat.st_mtime_ns}"
    return key


def load_split(training: Training) -> Split:
    """The experiment's train/validation(/test) split of training.dataset (seeded by training.splitSeed),
    normalised on the training part as training.normalization says; the last SPLIT_CACHE_SIZE splits
    are kept for later trials of this process (nothing mutates a Split's arrays)."""
    key = split_key(training)
    if key in _splits:
        _splits.move_to_end(key)
        return _splits[key]
    split = split_dataset(
        load_dataset(training),
        training.validation_fraction,
        training.test_fraction,
        training.split_seed,
        training.normalization,
    )
    _splits[key] = split
    while len(_splits) > SPLIT_CACHE_SIZE:
        _splits.popitem(last=False)
    return split
