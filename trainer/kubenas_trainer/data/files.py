"""Data files on a local path: .npz, .csv, .parquet and IDX (a file pair or a directory of them).

A file that is not there, or cannot be read as its kind, is DataUnavailable; one that reads but does not
fit training (a target column that is not there, non-numeric features) is an UnusableSpec.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kubenas_trainer.data.dataset import Dataset
from kubenas_trainer.data.idx import read_idx
from kubenas_trainer.spec import DataUnavailable, Task, Training, UnusableSpec

_X_KEYS = ("x", "X", "data", "features", "x_train")
_Y_KEYS = ("y", "Y", "target", "labels", "y_train")


def infer_task(y: np.ndarray, task: Task | None) -> Task:
    """Integer, boolean or string targets are classes; floating-point targets are regressed."""
    if task is not None:
        return task
    return Task.REGRESSION if np.issubdtype(y.dtype, np.floating) else Task.CLASSIFICATION


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    task: Task | None,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
) -> Dataset:
    """Cast features to float32 and encode class labels as 0..K-1 (jointly with a shipped test set); a
    single value per sample is one feature."""
    task = infer_task(y, task)
    x = x.reshape(len(x), 1) if x.ndim == 1 else x
    x_test = x_test.reshape(len(x_test), 1) if x_test is not None and x_test.ndim == 1 else x_test
    if task is Task.CLASSIFICATION:
        both = y if y_test is None else np.concatenate([y, y_test])
        _, codes = np.unique(both, return_inverse=True)
        codes = codes.astype(np.int64).reshape(-1)
        y, y_test = codes[: len(y)], None if y_test is None else codes[len(y) :]
    elif not (np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.bool_)):
        raise UnusableSpec(f"training.task: regression needs numeric targets, not {y.dtype} ones")
    else:
        y = y.astype(np.float32).reshape(len(y))
        y_test = None if y_test is None else y_test.astype(np.float32).reshape(len(y_test))
    x_test = None if x_test is None else x_test.astype(np.float32)
    return Dataset(x.astype(np.float32), y, task, x_test, y_test)


def _first(archive: np.lib.npyio.NpzFile, keys: tuple[str, ...], path: Path) -> np.ndarray:
    for key in keys:
        if key in archive:
            return np.asarray(archive[key])
    raise DataUnavailable(
        f"training.dataset: {path} needs an array named one of {', '.join(keys)} (has {', '.join(archive)})"
    )


def load_npz(path: Path, training: Training) -> Dataset:
    """Arrays x and y (or X/data/features, Y/target/labels); optional x_test and y_test."""
    with np.load(path, allow_pickle=False) as archive:
        x, y = _first(archive, _X_KEYS, path), _first(archive, _Y_KEYS, path)
        has_test = "x_test" in archive and "y_test" in archive
        x_test = np.asarray(archive["x_test"]) if has_test else None
        y_test = np.asarray(archive["y_test"]) if has_test else None
    return make_dataset(x, y, training.task, x_test, y_test)


def load_table(path: Path, training: Training) -> Dataset:
    """A .csv or .parquet table: the target column (training.target, 'target', or the last) and features."""
    import pandas as pd

    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    target = training.target or ("target" if "target" in frame.columns else str(frame.columns[-1]))
    if target not in frame.columns:
        raise UnusableSpec(
            f"training.target: column {target!r} is not in {path} ({', '.join(frame.columns)})"
        )
    features = frame.drop(columns=[target])
    non_numeric = [str(c) for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if non_numeric:
        raise UnusableSpec(
            f"training.target: {path}: feature columns must be numeric; {', '.join(non_numeric)} are not "
            f"(the target is {target!r})"
        )
    return make_dataset(features.to_numpy(dtype=np.float32), frame[target].to_numpy(), training.task)


def _labels_for(images: Path) -> Path:
    return images.with_name(images.name.replace("images-idx3", "labels-idx1"))


def _idx_images(path: Path) -> np.ndarray:
    images = read_idx(path)
    return images[:, None, :, :] if images.ndim == 3 else images  # (N, H, W) grey -> (N, 1, H, W)


def load_idx(path: Path, training: Training) -> Dataset:
    """An images file (its labels file next to it), or a directory with train-* and optional t10k-* pairs."""
    if path.is_dir():
        images = sorted(path.glob("*images-idx3-ubyte*"))
        train = [p for p in images if p.name.startswith("train")]
        test = [p for p in images if p.name.startswith(("t10k", "test"))]
        if not train:
            raise DataUnavailable(
                f"training.dataset: {path}: no train-images-idx3-ubyte[.gz] file in the directory"
            )
        x, y = _idx_images(train[0]), read_idx(_labels_for(train[0]))
        if test:
            return make_dataset(x, y, training.task, _idx_images(test[0]), read_idx(_labels_for(test[0])))
        return make_dataset(x, y, training.task)
    return make_dataset(_idx_images(path), read_idx(_labels_for(path)), training.task)


def load_file(path: Path, training: Training) -> Dataset:
    """The data set in a local file (or directory of IDX files) of a kind its name says."""
    if not path.exists():
        raise DataUnavailable(f"training.dataset: {path} does not exist")
    if path.suffix == ".npz":
        load = load_npz
    elif path.suffix in (".csv", ".parquet"):
        load = load_table
    elif path.is_dir() or "-ubyte" in path.name:
        load = load_idx
    else:
        raise DataUnavailable(f"training.dataset: {path} is not a .npz, .csv, .parquet or IDX file")
    try:
        return load(path, training)
    except UnusableSpec:
        raise
    except Exception as error:  # whatever the readers raise on a file they cannot read
        raise DataUnavailable(
            f"training.dataset: {path} cannot be read: {type(error).__name__}: {error}"[:1000]
        ) from error
