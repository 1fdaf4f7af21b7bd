"""Which source a training.dataset value names: a built-in set, a downloadable one, a file, or s3://.

locate() makes a data set's files local (a download, an s3:// object in the cache) or says why it cannot
(DataUnavailable, naming training.dataset and the cause): a trial calls it before anything heavy, so one
whose data is not there fails in seconds. load_dataset() reads the data set, through locate().
"""

from __future__ import annotations

from pathlib import Path

from kubenas_trainer.data import builtin, downloads, files, s3, sequences
from kubenas_trainer.data.dataset import Dataset
from kubenas_trainer.preflight import check_task
from kubenas_trainer.spec import DataUnavailable, Training, UnusableSpec


def _file(name: str) -> Path:
    if name.startswith("s3://"):
        return s3.fetch(name)
    path = Path(name.removeprefix("file://"))
    if not path.exists():
        raise DataUnavailable(f"training.dataset: {path} does not exist")
    return path


def locate(training: Training) -> Path | None:
    """training.dataset's file or directory on this machine, fetched when it is remote; None for a set
    shipped inside a package."""
    name = training.dataset
    if name in builtin.SKLEARN_SETS or name in sequences.SEQUENCE_SETS:
        return None
    if name in downloads.REMOTES:
        return downloads.fetch(name)
    return _file(name)


def load_dataset(training: Training) -> Dataset:
    name = training.dataset
    if name in builtin.SKLEARN_SETS:
        data = builtin.SKLEARN_SETS[name]()
    elif name in sequences.SEQUENCE_SETS:
        data = sequences.SEQUENCE_SETS[name](training.sequence_length)
    elif name in downloads.REMOTES:
        data = downloads.load_remote(name, training)
    else:
        data = files.load_file(_file(name), training)
    check_task(training, data.task)
    if len(data.x) == 0 or data.x.ndim < 2 or 0 in data.x.shape[1:]:
        raise UnusableSpec(f"training.dataset: {name} holds no samples to train on (inputs {data.x.shape})")
    return data
