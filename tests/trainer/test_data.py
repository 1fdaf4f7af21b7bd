"""Data: built-in sets, files (.npz, .csv, .parquet, IDX), s3:// (moto) and named downloads (fake mirror)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import pickle
import socket
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kubenas_trainer.data import downloads, load_dataset, load_split, split_dataset
from kubenas_trainer.data.dataset import Dataset
from kubenas_trainer.data.idx import read_idx
from kubenas_trainer.data.normalization import reduced_axes
from kubenas_trainer.shapes import builtin_shape
from kubenas_trainer.spec import (
    BUILTIN_DATASETS,
    DOWNLOADABLE_DATASETS,
    DataUnavailable,
    Task,
    Training,
    UnusableSpec,
)
from pydantic import ValidationError

rng = np.random.default_rng(0)

# The IDX type codes of the format's spec (http://yann.lecun.com/exdb/mnist/), for writing fixtures.
IDX_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write array as IDX (gzip-compressed when path ends in .gz), as MNIST's files are."""
    big = array.astype(array.dtype.newbyteorder(">"))
    code = IDX_CODES[f"{big.dtype.kind}{big.dtype.itemsize}"]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">i4").tobytes()
    payload = header + big.tobytes()
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)


@pytest.mark.parametrize("name", BUILTIN_DATASETS)
def test_builtin_sets_load_split_and_normalise(name: str) -> None:
    split = load_split(Training(dataset=name, testFraction=0.2, splitSeed=3))
    assert split.x_test is not None and split.y_test is not None
    sizes = [len(split.x_train), len(split.x_val), len(split.x_test)]
    assert min(sizes) > 0 and split.x_train.dtype == np.float32
    # standardised on the training part only: per channel for images and sequences, else per feature
    images_or_sequences = split.x_train.ndim > 2
    assert split.normalization == ("perChannel" if images_or_sequences else "perFeature")
    axes = reduced_axes(split.normalization, split.x_train.ndim)
    assert np.allclose(split.x_train.mean(axis=axes), 0, atol=1e-3)
    assert np.allclose(split.x_train.std(axis=axes)[split.x_std.reshape(-1) != 1], 1, atol=1e-3)
    if split.task is Task.CLASSIFICATION:
        assert split.num_classes == int(split.y_train.max()) + 1 and split.y_train.dtype == np.int64
    else:
        assert abs(float(split.y_train.mean())) < 1e-3 and split.num_outputs == 1


@pytest.mark.parametrize(
    "training",
    [
        *(Training(dataset=name) for name in BUILTIN_DATASETS),
        Training(dataset="sunspots", sequenceLength=8),
        Training(dataset="co2", sequenceLength=30),
    ],
    ids=lambda t: f"{t.dataset}-{t.sequence_length}",
)
def test_builtin_shapes_are_what_the_loaders_give(training: Training) -> None:
    assert builtin_shape(training) == load_split(training).input_shape


def test_expected_shapes_and_tasks() -> None:
    shapes = {n: load_split(Training(dataset=n)) for n in ("digits", "iris", "diabetes", "sunspots")}
    assert shapes["digits"].input_shape == (1, 8, 8) and shapes["digits"].num_classes == 10
    assert shapes["iris"].input_shape == (4,) and shapes["iris"].num_classes == 3
    assert shapes["diabetes"].task is Task.REGRESSION
    assert shapes["sunspots"].input_shape == (20, 1)
    assert load_split(Training(dataset="sunspots", sequenceLength=8)).input_shape == (8, 1)


def test_split_is_seeded_disjoint_and_stratified() -> None:
    x = np.arange(1000, dtype=np.float32)[:, None]
    y = (np.arange(1000) % 4).astype(np.int64)
    data = Dataset(x, y, Task.CLASSIFICATION)
    a, b, c = (split_dataset(data, 0.2, 0.1, seed) for seed in (1, 1, 2))
    assert np.array_equal(a.x_train, b.x_train) and not np.array_equal(a.x_train, c.x_train)
    raw = [s * a.x_std + a.x_mean for s in (a.x_train, a.x_val, a.x_test)]
    ids = [set(np.rint(r[:, 0]).astype(int)) for r in raw if r is not None]
    assert sum(len(i) for i in ids) == 1000 and len(set.union(*ids)) == 1000
    assert [len(i) for i in ids] == [700, 200, 100]
    assert np.bincount(a.y_val).tolist() == [50, 50, 50, 50]
    assert a.indices.test is not None and ids[1] == set(a.indices.validation.tolist())
    assert ids == [set(p.tolist()) for p in (a.indices.train, a.indices.validation, a.indices.test)]


def test_time_series_split_chronologically() -> None:
    series = np.arange(100, dtype=np.float32)[:, None]
    split = split_dataset(Dataset(series, series[:, 0], Task.REGRESSION, ordered=True), 0.2, 0.2, 5)
    assert split.x_test is not None
    unscale = lambda a: a * split.x_std + split.x_mean  # noqa: E731
    assert unscale(split.x_train).max() < unscale(split.x_val).min() < unscale(split.x_test).min()
    assert split.indices.test is not None and split.indices.test.tolist() == list(range(80, 100))


def test_shipped_test_set_is_kept_as_the_test_split() -> None:
    data = Dataset(rng.normal(size=(50, 3)), np.arange(50) % 2, Task.CLASSIFICATION)
    data = Dataset(data.x, data.y, data.task, x_test=np.ones((7, 3)), y_test=np.zeros(7, dtype=np.int64))
    split = split_dataset(data, 0.2, 0.3, seed=0)
    assert split.x_test is not None and len(split.x_test) == 7 and len(split.x_train) == 40
    assert split.indices.test is None
    shipped, none = (split_dataset(d, 0.2, 0.0, seed=0) for d in (data, Dataset(data.x, data.y, data.task)))
    assert np.array_equal(shipped.indices.validation, none.indices.validation)
    assert shipped.fingerprint != none.fingerprint  # a shipped test set is part of what names a split


def _table() -> pd.DataFrame:
    frame = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    frame["label"] = np.where(frame["a"] > 0, "yes", "no")
    return frame


def test_csv_and_parquet_with_named_and_default_target(tmp_path: Path) -> None:
    frame = _table()
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    numeric = frame.drop(columns="label")
    numeric.to_csv(tmp_path / "n.csv", index=False)
    numeric.to_parquet(tmp_path / "n.parquet")
    for name in ("t.csv", "t.parquet"):
        data = load_dataset(Training(dataset=str(tmp_path / name)))  # last column is the target
        assert data.task is Task.CLASSIFICATION and data.x.shape == (60, 3)
        assert np.array_equal(data.y, (frame["label"] == "yes").to_numpy().astype(np.int64))
        numeric_name = name.replace("t.", "n.")
        regression = load_dataset(Training(dataset=str(tmp_path / numeric_name), target="b"))
        assert regression.task is Task.REGRESSION and np.allclose(regression.y, frame["b"])
        assert regression.x.shape == (60, 2)


def test_bad_table_target_and_features_are_named(tmp_path: Path) -> None:
    _table().to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(UnusableSpec, match=r"training\.target: column 'nope' is not in"):
        load_dataset(Training(dataset=str(tmp_path / "t.csv"), target="nope"))
    with pytest.raises(UnusableSpec, match="feature columns must be numeric; label are not") as error:
        load_dataset(Training(dataset=str(tmp_path / "t.csv"), target="a"))
    assert not isinstance(error.value, DataUnavailable)
    with pytest.raises(UnusableSpec, match=r"training\.task: regression needs numeric targets, not object"):
        load_dataset(Training(dataset=str(tmp_path / "t.csv"), task="regression", target="label"))
    with pytest.raises(UnusableSpec, match=r"training\.task: iris is a classification data set, not regr"):
        load_dataset(Training(dataset="iris", task="regression"))


def test_npz_with_and_without_a_test_set(tmp_path: Path) -> None:
    x, y = rng.normal(size=(40, 2, 5)), rng.normal(size=40)
    np.savez(tmp_path / "a.npz", x=x, y=y)
    np.savez(tmp_path / "b.npz", X=x, labels=(y > 0).astype(int), x_test=x[:5], y_test=np.ones(5, int))
    a, b = (
        load_dataset(Training(dataset=str(tmp_path / "a.npz"))),
        load_dataset(Training(dataset=str(tmp_path / "b.npz"))),
    )
    assert a.task is Task.REGRESSION and a.x.shape == (40, 2, 5) and a.x_test is None
    assert b.task is Task.CLASSIFICATION and b.x_test is not None and b.y_test is not None
    assert len(b.x_test) == 5
    np.savez(tmp_path / "c.npz", inputs=x)
    with pytest.raises(DataUnavailable, match="needs an array named one of x, X"):
        load_dataset(Training(dataset=str(tmp_path / "c.npz")))
    np.savez(tmp_path / "d.npz", x=np.arange(6.0), y=np.arange(6) % 2)  # one value per sample: one feature
    assert load_dataset(Training(dataset=str(tmp_path / "d.npz"))).x.shape == (6, 1)
    np.savez(tmp_path / "e.npz", x=np.ones((6, 0)), y=np.arange(6) % 2)
    with pytest.raises(UnusableSpec, match="holds no samples to train on"):
        load_dataset(Training(dataset=str(tmp_path / "e.npz")))


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip_and_mnist_layout(tmp_path: Path, suffix: str) -> None:
    images = rng.integers(0, 256, size=(30, 6, 5), dtype=np.uint8)
    labels = rng.integers(0, 10, size=30, dtype=np.uint8)
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels)
    assert np.array_equal(read_idx(tmp_path / f"train-images-idx3-ubyte{suffix}"), images)
    floats = rng.normal(size=(3, 4)).astype(np.float32)
    write_idx(tmp_path / "f-ubyte", floats)
    assert np.array_equal(read_idx(tmp_path / "f-ubyte"), floats)
    single = load_dataset(Training(dataset=str(tmp_path / f"train-images-idx3-ubyte{suffix}")))
    assert single.x.shape == (30, 1, 6, 5) and single.x_test is None
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images[:4])
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels[:4])
    both = load_dataset(Training(dataset=f"{tmp_path}/"))
    assert both.x_test is not None and both.x_test.shape == (4, 1, 6, 5)
    assert np.array_equal(np.unique(labels, return_inverse=True)[1][:4], both.y_test)


def test_not_idx_and_missing_files_fail_clearly(tmp_path: Path) -> None:
    (tmp_path / "x-ubyte").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "x-ubyte")
    missing = str(tmp_path / "missing.csv")
    with pytest.raises(DataUnavailable, match=rf"^training\.dataset: {missing} does not exist"):
        load_dataset(Training(dataset=missing))
    with pytest.raises(
        DataUnavailable, match=r"training\.dataset: .*x-ubyte cannot be read: .*not an IDX file"
    ):
        load_dataset(Training(dataset=str(tmp_path / "x-ubyte")))
    for name, content in (("bad.parquet", b"not parquet"), ("bad.npz", b"not a zip"), ("bad.csv", b"")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataUnavailable, match=rf"training\.dataset: .*{name} cannot be read: "):
            load_dataset(Training(dataset=str(tmp_path / name)))


def test_unknown_dataset_names_and_fractions_are_rejected() -> None:
    with pytest.raises(ValidationError, match="unknown data set 'imagenet'; must be one of digits"):
        Training(dataset="imagenet")
    with pytest.raises(ValidationError, match=r"validationFraction \+ testFraction must be <= 0\.9"):
        Training(validationFraction=0.5, testFraction=0.5)


# --- downloads: a fake mirror on loopback HTTP ---------------------------------------------------


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    root = tmp_path / "mirror"
    root.mkdir()
    requests: list[str] = []
    handler = type("Handler", (CountingHandler,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=root))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root, requests
    server.shutdown()


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def _fake_mnist(directory: Path) -> dict[str, str]:
    directory.mkdir(parents=True)
    images = rng.integers(0, 256, size=(20, 28, 28), dtype=np.uint8)
    labels = (np.arange(20) % 10).astype(np.uint8)
    for prefix, count in (("train", 16), ("t10k", 4)):
        part = slice(0, count) if prefix == "train" else slice(16, 20)
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images[part])
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels[part])
    return {name: _md5(directory / name) for name in downloads.REMOTES["mnist"].files}


def test_named_download_checks_checksums_and_caches(
    mirror: tuple[str, Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root, requests = mirror
    checksums = _fake_mnist(root / "mnist")
    real = downloads.REMOTES["mnist"]
    monkeypatch.setitem(downloads.REMOTES, "mnist", downloads.Remote(checksums, real.mirrors, real.load))
    monkeypatch.setenv("KUBENAS_DATASET_MIRROR", url)
    monkeypatch.setenv("KUBENAS_DATA_CACHE", str(tmp_path / "cache"))

    data = load_dataset(Training(dataset="mnist"))
    assert data.x.shape == (16, 1, 28, 28) and data.x_test is not None and len(data.x_test) == 4
    assert len(requests) == 4
    load_dataset(Training(dataset="mnist"))
    assert len(requests) == 4  # served from the cache

    cached = tmp_path / "cache" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    cached.write_bytes(b"corrupt")  # a damaged cache file is fetched again
    load_dataset(Training(dataset="mnist"))
    assert len(requests) == 5 and _md5(cached) == checksums["t10k-labels-idx1-ubyte.gz"]


def test_download_with_a_wrong_checksum_is_refused(
    mirror: tuple[str, Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root, _ = mirror
    _fake_mnist(root / "fashion_mnist")  # served, but not the published files: checksums differ
    monkeypatch.setenv("KUBENAS_DATASET_MIRROR", url)
    monkeypatch.setenv("KUBENAS_DATA_CACHE", str(tmp_path / "cache"))
    with pytest.raises(
        DataUnavailable, match=r"checksum mismatch .* expected 8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    ):
        load_dataset(Training(dataset="fashion_mnist"))
    assert not list((tmp_path / "cache" / "fashion_mnist").iterdir())


def _fake_cifar10(directory: Path) -> dict[str, str]:
    """CIFAR-10's python archive with two small training batches and a test batch; its checksum."""
    directory.mkdir(parents=True)
    archive = directory / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, count in (("data_batch_1", 6), ("data_batch_2", 6), ("test_batch", 3)):
            batch = {
                b"data": rng.integers(0, 256, size=(count, 3072), dtype=np.uint8),
                b"labels": list(range(count)),
            }
            payload = pickle.dumps(batch)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return {archive.name: _md5(archive)}


def _serve(name: str, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Data set `name` on the fake mirror at root, with its fake files' checksums."""
    checksums = _fake_cifar10(root / name) if name == "cifar10" else _fake_mnist(root / name)
    real = downloads.REMOTES[name]
    monkeypatch.setitem(downloads.REMOTES, name, downloads.Remote(checksums, real.mirrors, real.load))


def test_cifar10_archive_layout(
    mirror: tuple[str, Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root, _ = mirror
    _serve("cifar10", root, monkeypatch)
    monkeypatch.setenv("KUBENAS_DATASET_MIRROR", url)
    monkeypatch.setenv("KUBENAS_DATA_CACHE", str(tmp_path / "cache"))
    data = load_dataset(Training(dataset="cifar10"))
    assert data.x.shape == (12, 3, 32, 32) and data.x_test is not None and data.x_test.shape == (3, 3, 32, 32)


@pytest.mark.parametrize("name", DOWNLOADABLE_DATASETS)
def test_downloadable_shapes_are_what_the_loaders_give(
    name: str, mirror: tuple[str, Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root, _ = mirror
    _serve(name, root, monkeypatch)
    monkeypatch.setenv("KUBENAS_DATASET_MIRROR", url)
    monkeypatch.setenv("KUBENAS_DATA_CACHE", str(tmp_path / "cache"))
    training = Training(dataset=name)
    assert load_split(training).input_shape == builtin_shape(training)


def test_a_mirror_that_does_not_answer_makes_the_data_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("KUBENAS_DATASET_MIRROR", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("KUBENAS_DATA_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataUnavailable, match=r"^training\.dataset: cannot fetch mnist train-images"):
        load_dataset(Training(dataset="mnist"))


# --- s3:// against moto's S3-compatible server on loopback ------------------------------------------


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    moto_server = pytest.importorskip("moto.server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "KUBENAS_DATA_CACHE": str(tmp_path / "cache"),
    }.items():
        monkeypatch.setenv(key, value)
    yield endpoint
    server.stop()


def test_s3_objects_and_prefixes(s3_endpoint: str, tmp_path: Path) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="data")
    frame = _table()
    frame.to_parquet(tmp_path / "t.parquet")
    s3.upload_file(str(tmp_path / "t.parquet"), "data", "tables/t.parquet")
    images = rng.integers(0, 256, size=(10, 4, 4), dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(10, dtype=np.uint8) % 2)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        s3.upload_file(str(tmp_path / name), "data", f"idx/{name}")

    table = load_dataset(Training(dataset="s3://data/tables/t.parquet"))
    assert table.x.shape == (60, 3) and table.task is Task.CLASSIFICATION
    idx = load_dataset(Training(dataset="s3://data/idx/"))
    assert idx.x.shape == (10, 1, 4, 4)
    with pytest.raises(DataUnavailable, match="no objects under s3://data/nothing/"):
        load_dataset(Training(dataset="s3://data/nothing/"))
    for uri, cause in (
        ("s3://data/tables/none.csv", "no such object"),
        ("s3://nob/t.csv", "no such bucket 'nob'"),
    ):
        with pytest.raises(DataUnavailable) as error:
            load_dataset(Training(dataset=uri))
        assert str(error.value) == f"training.dataset: {uri}: {cause}"


def test_an_s3_store_that_does_not_answer_is_retried_then_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for key, value in {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "KUBENAS_DATA_CACHE": str(tmp_path / "cache"),
        "KUBENAS_STORAGE_DEADLINE_SECONDS": "1",
        "KUBENAS_STORAGE_BACKOFF_SECONDS": "0.1",
    }.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(DataUnavailable) as error:
        load_dataset(Training(dataset="s3://data/t.csv"))
    cause = "the store does not answer: head s3://data/t.csv: EndpointConnectionError"
    assert str(error.value).startswith(f"training.dataset: s3://data/t.csv: {cause}")
