"""MNIST, Fashion-MNIST and CIFAR-10 by name: downloaded once from a public mirror, checked, cached.

Files land in cache_dir()/NAME/ and are verified against their published MD5 checksums on every use;
a file that fails is fetched again, from the next mirror if need be. $KUBENAS_DATASET_MIRROR replaces
the mirrors with one base URL serving NAME/FILE (an internal mirror, or a test fixture).
"""

from __future__ import annotations

import os
import pickle
import tarfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kubenas_trainer.data.cache import cache_dir, md5sum
from kubenas_trainer.data.dataset import Dataset
from kubenas_trainer.data.files import load_idx, make_dataset
from kubenas_trainer.spec import DataUnavailable, Training


def _load_cifar10(directory: Path, training: Training) -> Dataset:
    """The python-pickle archive: data_batch_1..5 for training, test_batch as the test set."""
    batches: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with tarfile.open(directory / "cifar-10-python.tar.gz", "r:gz") as archive:
        for member in archive.getmembers():
            name = Path(member.name).name
            if name.startswith("data_batch_") or name == "test_batch":
                stream = archive.extractfile(member)
                assert stream is not None
                batch = pickle.load(stream, encoding="bytes")  # checksum-verified archive
                x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
                batches[name] = (x, np.asarray(batch[b"labels"], dtype=np.int64))
    train = [batches[k] for k in sorted(batches) if k != "test_batch"]
    if not train or "test_batch" not in batches:
        raise ValueError(f"{directory}: the CIFAR-10 archive lacks data_batch_* or test_batch")
    x, y = np.concatenate([b[0] for b in train]), np.concatenate([b[1] for b in train])
    return make_dataset(x, y, training.task, *batches["test_batch"])


@dataclass(frozen=True)
class Remote:
    files: dict[str, str]  # file name -> MD5
    mirrors: tuple[str, ...]
    load: Callable[[Path, Training], Dataset]


_MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

REMOTES: dict[str, Remote] = {
    "mnist": Remote(
        dict(
            zip(
                _MNIST_FILES,
                (
                    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "d53e105ee54ea40749a09fcbcd1e9432",
                    "9fb629c4189551a2d022fa330f9573f3",
                    "ec29112dd5afa0611ce80d1b7f02629c",
                ),
                strict=True,
            )
        ),
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        load_idx,
    ),
    "fashion_mnist": Remote(
        dict(
            zip(
                _MNIST_FILES,
                (
                    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    "25c81989df183df01b3e8a0aad5dffbe",
                    "bef4ecab320f06d8554ea6380940ec79",
                    "bb300cfdad3c16e7a12a480ee83cd310",
                ),
                strict=True,
            )
        ),
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        load_idx,
    ),
    "cifar10": Remote(
        {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
        ("https://www.cs.toronto.edu/~kriz/",),
        _load_cifar10,
    ),
}


def _download(url: str, target: Path, md5: str) -> str | None:
    """Fetch url into target if its checksum matches; else return why not."""
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
            while block := response.read(1 << 20):
                out.write(block)
    except OSError as error:
        partial.unlink(missing_ok=True)
        return f"{url}: {error}"
    actual = md5sum(partial)
    if actual != md5:
        partial.unlink()
        return f"{url}: checksum mismatch (md5 {actual}, expected {md5})"
    partial.replace(target)
    return None


def fetch(name: str) -> Path:
    """The cache directory holding every verified file of data set name; DataUnavailable when a file
    cannot be fetched from any mirror."""
    remote = REMOTES[name]
    directory = cache_dir() / name
    directory.mkdir(parents=True, exist_ok=True)
    override = os.environ.get("KUBENAS_DATASET_MIRROR")
    mirrors = (f"{override.rstrip('/')}/{name}/",) if override else remote.mirrors
    for filename, md5 in remote.files.items():
        target = directory / filename
        if target.exists() and md5sum(target) == md5:
            continue
        failures = [why for base in mirrors if (why := _download(base + filename, target, md5))]
        if len(failures) == len(mirrors):
            raise DataUnavailable(f"training.dataset: cannot fetch {name} {filename}: {'; '.join(failures)}")
    return directory


def load_remote(name: str, training: Training) -> Dataset:
    return REMOTES[name].load(fetch(name), training)
