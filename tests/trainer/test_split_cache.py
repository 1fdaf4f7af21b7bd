"""A process that runs many trials (the local runner's workers) reads its experiment's split once."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from kubenas_trainer.data import SPLIT_CACHE_SIZE, load_split
from kubenas_trainer.spec import Training


def write(path: Path, samples: int, mtime: int) -> None:
    rng = np.random.default_rng(samples)
    np.savez(path, x=rng.normal(size=(samples, 4)), y=rng.integers(0, 2, size=samples))
    os.utime(path, ns=(mtime, mtime))


def test_the_same_split_is_read_once_and_any_change_reads_again(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    write(path, 60, 1_000_000_000)
    training = Training(dataset=str(path), epochs=3)
    first = load_split(training)
    assert load_split(training.model_copy(update={"epochs": 7})) is first  # epochs shape no split
    assert load_split(training.model_copy(update={"split_seed": 1})) is not first
    write(path, 80, 2_000_000_000)  # the file rewritten: read again
    again = load_split(training)
    assert len(again.x_train) + len(again.x_val) == 80


def test_only_the_last_splits_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    write(path, 40, 1_000_000_000)
    trainings = [Training(dataset=str(path), split_seed=seed) for seed in range(SPLIT_CACHE_SIZE + 1)]
    oldest = load_split(trainings[0])
    for training in trainings[1:]:
        load_split(training)
    assert load_split(trainings[-1]) is load_split(trainings[-1])
    assert load_split(trainings[0]) is not oldest
