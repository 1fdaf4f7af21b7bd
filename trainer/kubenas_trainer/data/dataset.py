"""Raw data sets and their train/validation/test split: one per experiment, normalised on its training part.

The split is a function of the data and training (splitSeed, fractions, normalisation) only, never of a
trial's seed: every trial of an experiment trains and validates on the same samples, and a trial that
continues another's checkpoint validates on samples its weights never trained on. The split is drawn on
sample indices, so it knows which raw sample went where; its fingerprint names it (equal fingerprints,
equal split), and checkpoints record it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from kubenas_trainer.data import normalization
from kubenas_trainer.spec import InputNormalization, Task

FINGERPRINT_LENGTH = 12


@dataclass(frozen=True)
class Dataset:
    """Samples in their natural shape; y holds class indices (int64) or regression targets (float32).

    A source that ships its own test set passes it as x_test/y_test; ordered data (a time series)
    is split chronologically instead of at random.
    """

    x: np.ndarray
    y: np.ndarray
    task: Task
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    ordered: bool = False


@dataclass(frozen=True)
class Indices:
    """Which raw samples (positions in Dataset.x) each part holds; test is None when there is no test
    part or the source ships its own test set."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray | None


@dataclass(frozen=True)
class Split:
    """Normalised splits plus the statistics that undo the normalisation (for export and metrics).

    The input transform is (x - x_mean) / x_std, the statistics shaped to broadcast against one sample;
    normalization is the mode applied (auto resolved). fingerprint names the split (see fingerprint()).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    task: Task
    num_classes: int
    x_mean: np.ndarray
    x_std: np.ndarray
    normalization: InputNormalization
    indices: Indices
    fingerprint: str
    y_mean: float = 0.0
    y_std: float = 1.0
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_outputs(self) -> int:
        return self.num_classes if self.task is Task.CLASSIFICATION else 1


def _split(
    index: np.ndarray, y: np.ndarray, fraction: float, seed: int, task: Task, ordered: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out) indices: the last fraction in time order, or a seeded (stratified) draw."""
    from sklearn.model_selection import train_test_split  # seconds to import: not before a trial needs it

    if ordered:
        cut = len(index) - max(1, round(len(index) * fraction))
        return index[:cut], index[cut:]
    labels = y[index]
    stratify = labels if task is Task.CLASSIFICATION and np.bincount(labels).min(initial=2) >= 2 else None
    try:
        parts = train_test_split(index, test_size=fraction, random_state=seed % 2**32, stratify=stratify)
    except ValueError:  # too few samples of some class for a stratified split
        parts = train_test_split(index, test_size=fraction, random_state=seed % 2**32)
    return parts[0], parts[1]


def split_indices(data: Dataset, validation_fraction: float, test_fraction: float, seed: int) -> Indices:
    """Hold out test (unless the source ships one), then validation, from the indices of data.x."""
    index, test = np.arange(len(data.x)), None
    if data.x_test is None and test_fraction > 0:
        index, test = _split(index, data.y, test_fraction, seed, data.task, data.ordered)
        validation_fraction = validation_fraction / (1.0 - test_fraction)
    train, validation = _split(index, data.y, validation_fraction, seed, data.task, data.ordered)
    return Indices(train, validation, test)


def fingerprint(data: Dataset, indices: Indices, mode: InputNormalization) -> str:
    """12 hex digits of sha256 over what makes two splits the same: the number and shape of samples,
    the targets, the sorted validation and test indices, a shipped test set's size, the normalisation."""
    digest = hashlib.sha256()
    shipped = -1 if data.x_test is None else len(data.x_test)
    digest.update(f"n={len(data.x)};shape={data.x.shape[1:]};shipped={shipped};norm={mode};".encode())
    digest.update(np.ascontiguousarray(data.y).tobytes())
    for part in (indices.validation, indices.test):
        digest.update(b"|" + (b"-" if part is None else np.sort(part).astype("<i8").tobytes()))
    return digest.hexdigest()[:FINGERPRINT_LENGTH]


def split_dataset(
    data: Dataset,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    mode: InputNormalization = InputNormalization.AUTO,
) -> Split:
    """The seeded split of data, standardised with the training part's statistics (see normalization)."""
    indices = split_indices(data, validation_fraction, test_fraction, seed)
    x_train, y_train = data.x[indices.train], data.y[indices.train]
    x_val, y_val = data.x[indices.validation], data.y[indices.validation]
    x_test, y_test = data.x_test, data.y_test
    if indices.test is not None:
        x_test, y_test = data.x[indices.test], data.y[indices.test]
    applied = normalization.resolve(mode, x_train.shape[1:])
    x_mean, x_std = normalization.statistics(x_train, applied)

    def norm_x(a: np.ndarray) -> np.ndarray:
        normalised: np.ndarray = ((a - x_mean) / x_std).astype(np.float32)
        return normalised

    if data.task is Task.CLASSIFICATION:
        num_classes = int(max(data.y.max(), -1 if y_test is None else y_test.max())) + 1
        y_mean, y_std = 0.0, 1.0
    else:
        num_classes = 0
        y_mean, y_std = float(y_train.mean(dtype=np.float64)), normalization.scalar_std(y_train)

    def norm_y(a: np.ndarray) -> np.ndarray:
        if data.task is Task.CLASSIFICATION:
            return a.astype(np.int64)
        return ((a - y_mean) / y_std).astype(np.float32)

    return Split(
        x_train=norm_x(x_train),
        y_train=norm_y(y_train),
        x_val=norm_x(x_val),
        y_val=norm_y(y_val),
        task=data.task,
        num_classes=num_classes,
        x_mean=x_mean,
        x_std=x_std,
        normalization=applied,
        indices=indices,
        fingerprint=fingerprint(data, indices, applied),
        y_mean=y_mean,
        y_std=y_std,
        x_test=None if x_test is None else norm_x(x_test),
        y_test=None if y_test is None else norm_y(y_test),
    )
