"""Which source a training.dataset value names: a built-in set, a downloadable one, a file, or s3://."""

from __future__ import annotations

from pathlib import Path

from kubenas_trainer.data import builtin, downloads, files, s3, sequences
from kubenas_trainer.data.dataset import Dataset
from kubenas_trainer.spec import Training


def load_dataset(training: Training) -> Dataset:
    name = training.dataset
    if name in builtin.SKLEARN_SETS:
        data = builtin.SKLEARN_SETS[name]()
    elif name in sequences.SEQUENCE_SETS:
        data = sequences.SEQUENCE_SETS[name](training.sequence_length)
    elif name in downloads.REMOTES:
        data = downloads.load_remote(name, training)
    elif name.startswith("s3://"):
        data = files.load_file(s3.fetch(name), training)
    else:
        data = files.load_file(Path(name.removeprefix("file://")), training)
    if training.task is not None and training.task is not data.task:
        raise ValueError(f"training.task: {name} is a {data.task} data set, not {training.task}")
    return data
