"""scikit-learn's small data sets, which ship inside the package (no network).

scikit-learn is imported when a set is loaded, not with this module: a trial that cannot run fails sooner.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from kubenas_trainer.data.dataset import Dataset
from kubenas_trainer.spec import Task


def _classification(bunch: Any) -> Dataset:
    return Dataset(bunch.data.astype(np.float32), bunch.target.astype(np.int64), Task.CLASSIFICATION)


def _load(name: str) -> Any:
    from sklearn import datasets

    return getattr(datasets, f"load_{name}")()


def digits() -> Dataset:
    """8x8 grey images, shaped (1, 8, 8) so convolutions see them; dense layers flatten them."""
    bunch = _load("digits")
    images = bunch.images.astype(np.float32)[:, None, :, :]
    return Dataset(images, bunch.target.astype(np.int64), Task.CLASSIFICATION)


def diabetes() -> Dataset:
    bunch = _load("diabetes")
    return Dataset(bunch.data.astype(np.float32), bunch.target.astype(np.float32), Task.REGRESSION)


SKLEARN_SETS: dict[str, Callable[[], Dataset]] = {
    "digits": digits,
    "iris": lambda: _classification(_load("iris")),
    "wine": lambda: _classification(_load("wine")),
    "breast_cancer": lambda: _classification(_load("breast_cancer")),
    "diabetes": diabetes,
}
