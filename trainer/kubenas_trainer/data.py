"""Data sets a trial trains on, split and normalised the same way for every trial with the same seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    num_classes: int

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[1])


def load_split(dataset: str, validation_fraction: float, seed: int) -> Split:
    if dataset != "digits":
        raise ValueError(f"training.dataset: unknown data set {dataset!r}")
    bunch = load_digits()
    x, y = bunch.data.astype(np.float32), bunch.target.astype(np.int64)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=validation_fraction, random_state=seed % 2**32, stratify=y
    )
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    return Split(
        x_train=(x_train - mean) / std,
        y_train=y_train,
        x_val=(x_val - mean) / std,
        y_val=y_val,
        num_classes=int(y.max()) + 1,
    )
