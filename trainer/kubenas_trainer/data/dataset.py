"""Raw data sets and their seeded, normalised train/validation/test split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from kubenas_trainer.spec import Task


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
class Split:
    """Normalised splits plus the statistics that undo the normalisation (for export and metrics)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    task: Task
    num_classes: int
    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: float = 0.0
    y_std: float = 1.0
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_features(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def num_outputs(self) -> int:
        return self.num_classes if self.task is Task.CLASSIFICATION else 1


def _split(
    x: np.ndarray, y: np.ndarray, fraction: float, seed: int, task: Task, ordered: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_keep, x_out, y_keep, y_out): the last fraction in time order, or a seeded (stratified) draw."""
    if ordered:
        cut = len(x) - max(1, round(len(x) * fraction))
        return x[:cut], x[cut:], y[:cut], y[cut:]
    stratify = y if task is Task.CLASSIFICATION and np.bincount(y).min(initial=2) >= 2 else None
    try:
        parts = train_test_split(x, y, test_size=fraction, random_state=seed % 2**32, stratify=stratify)
    except ValueError:  # too few samples of some class for a stratified split
        parts = train_test_split(x, y, test_size=fraction, random_state=seed % 2**32)
    return parts[0], parts[1], parts[2], parts[3]


def split_dataset(data: Dataset, validation_fraction: float, test_fraction: float, seed: int) -> Split:
    """Hold out test (unless the source ships one), then validation; standardise on the training part."""
    x, y, x_test, y_test = data.x, data.y, data.x_test, data.y_test
    if x_test is None and test_fraction > 0:
        x, x_test, y, y_test = _split(x, y, test_fraction, seed, data.task, data.ordered)
        validation_fraction = validation_fraction / (1.0 - test_fraction)
    x_train, x_val, y_train, y_val = _split(x, y, validation_fraction, seed, data.task, data.ordered)

    x_mean = x_train.mean(axis=0).astype(np.float32)
    x_std = (x_train.std(axis=0) + 1e-6).astype(np.float32)

    def norm_x(a: np.ndarray) -> np.ndarray:
        normalised: np.ndarray = ((a - x_mean) / x_std).astype(np.float32)
        return normalised

    if data.task is Task.CLASSIFICATION:
        num_classes = int(max(y.max(), -1 if y_test is None else y_test.max())) + 1
        y_mean, y_std = 0.0, 1.0
    else:
        num_classes = 0
        y_mean, y_std = float(y_train.mean()), float(y_train.std() + 1e-6)

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
        y_mean=y_mean,
        y_std=y_std,
        x_test=None if x_test is None else norm_x(x_test),
        y_test=None if y_test is None else norm_y(y_test),
    )
