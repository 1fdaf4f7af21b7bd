"""scikit-learn's small data sets, which ship inside the package (no network)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn import datasets

from kubenas_trainer.data.dataset import Dataset
from kubenas_trainer.spec import Task


def _classification(bunch: Any) -> Dataset:
    return Dataset(bunch.data.astype(np.float32), bunch.target.astype(np.int64), Task.CLASSIFICATION)


def digits() -> Dataset:
    """8x8 grey images, shaped (1, 8, 8) so convolutions see them; dense layers flatten them."""
    bunch = datasets.load_digits()
    images = bunch.images.astype(np.float32)[:, None, :, :]
    return Dataset(images, bunch.target.astype(np.int64), Task.CLASSIFICATION)


def diabetes() -> Dataset:
    bunch = datasets.load_diabetes()
    return Dataset(bunch.data.astype(np.float32), bunch.target.astype(np.float32), Task.REGRESSION)


SKLEARN_SETS: dict[str, Callable[[], Dataset]] = {
    "digits": digits,
    "iris": lambda: _classification(datasets.load_iris()),
    "wine": lambda: _classification(datasets.load_wine()),
    "breast_cancer": lambda: _classification(datasets.load_breast_cancer()),
    "diabetes": diabetes,
}
