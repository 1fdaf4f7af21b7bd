"""Input normalisation: bounded on pixels that are blank in every training image, zero std scaled by 1
(as scikit-learn's StandardScaler), and the same transform inside the exported model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from kubenas_trainer.artifacts import export_model
from kubenas_trainer.data import Dataset, Split, load_split, split_dataset
from kubenas_trainer.data.dataset import split_indices
from kubenas_trainer.data.normalization import resolve, statistics
from kubenas_trainer.models import build_model
from kubenas_trainer.spec import Architecture, InputNormalization, Layer, Task, TrialSpec
from kubenas_trainer.train import train
from sklearn.preprocessing import StandardScaler

MakeSpec = Callable[..., TrialSpec]
MODES = list(InputNormalization)
BOUNDED = [InputNormalization.AUTO, InputNormalization.PER_CHANNEL, InputNormalization.GLOBAL]
INK = 255.0


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def inked_borders(n: int = 600, seed: int = 0) -> Dataset:
    """8x8 grey images of 4 classes (which quadrant is brighter), with a 1-pixel border that is 0 in every
    training sample of the split (validation 0.2, test 0.2, splitSeed 0) but carries a stray mark of ink
    in half the held-out ones."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 4).astype(np.int64)
    x = rng.uniform(0, 60, size=(n, 1, 8, 8)).astype(np.float32)
    for label, (rows, cols) in enumerate([(1, 1), (1, 4), (4, 1), (4, 4)]):
        x[y == label, 0, rows : rows + 3, cols : cols + 3] += 30
    x[:, :, [0, -1], :], x[:, :, :, [0, -1]] = 0, 0
    held_out = split_indices(Dataset(x, y, Task.CLASSIFICATION), 0.2, 0.2, seed=0)
    assert held_out.test is not None
    for index in np.concatenate([held_out.validation, held_out.test])[::2]:
        x[index, 0, 0, 2:4] = INK  # a stray mark
    return Dataset(x, y, Task.CLASSIFICATION)


def held_out(split: Split) -> np.ndarray:
    assert split.x_test is not None
    return np.concatenate([split.x_val, split.x_test])


@pytest.mark.parametrize("mode", BOUNDED)
def test_pixels_blank_in_training_stay_bounded_in_validation_and_test(mode: InputNormalization) -> None:
    split = split_dataset(inked_borders(), 0.2, 0.2, seed=0, mode=mode)
    assert np.abs(split.x_train[:, 0, 0, :]).max() < 5  # the border is 0 in every training image
    assert (held_out(split)[:, 0, 0, :] > 1).any()  # and inked in some held-out ones
    assert np.abs(held_out(split)).max() < 50 and np.abs(split.x_train).max() < 50


def test_per_feature_scales_pixels_constant_in_training_by_one() -> None:
    split = split_dataset(inked_borders(), 0.2, 0.2, seed=0, mode=InputNormalization.PER_FEATURE)
    assert split.x_mean.shape == split.x_std.shape == (1, 8, 8)
    assert (split.x_std[0, 0, :] == 1).all() and (split.x_mean[0, 0, :] == 0).all()
    assert (split.x_std[0, 1:-1, 1:-1] > 1).all()  # the interior is scaled by its own std
    border = held_out(split)[:, 0, 0, :]
    assert set(np.unique(border).tolist()) == {0.0, INK}  # a raw 255 stays 255 - 0, not 255 / 1e-6
    assert np.abs(held_out(split)).max() <= INK


@pytest.mark.parametrize("mode", MODES)
def test_no_mode_explodes(mode: InputNormalization) -> None:
    """The old per-feature std + 1e-6 turned an inked blank pixel into 2.55e8."""
    split = split_dataset(inked_borders(), 0.2, 0.2, seed=0, mode=mode)
    assert np.abs(held_out(split)).max() < 1e3


@pytest.mark.parametrize(
    ("shape", "mode", "applied", "statistics_shape"),
    [
        ((3, 4, 5), InputNormalization.AUTO, InputNormalization.PER_CHANNEL, (3, 1, 1)),
        ((7, 2), InputNormalization.AUTO, InputNormalization.PER_CHANNEL, (1, 2)),
        ((6,), InputNormalization.AUTO, InputNormalization.PER_FEATURE, (6,)),
        ((6,), InputNormalization.PER_CHANNEL, InputNormalization.PER_FEATURE, (6,)),
        ((3, 4, 5), InputNormalization.PER_FEATURE, InputNormalization.PER_FEATURE, (3, 4, 5)),
        ((3, 4, 5), InputNormalization.GLOBAL, InputNormalization.GLOBAL, (1, 1, 1)),
        ((7, 2), InputNormalization.NONE, InputNormalization.NONE, (1, 1)),
    ],
)
def test_statistics_broadcast_against_one_sample(
    shape: tuple[int, ...],
    mode: InputNormalization,
    applied: InputNormalization,
    statistics_shape: tuple[int, ...],
) -> None:
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(50, *shape)) * rng.uniform(1, 9, size=shape) + 3).astype(np.float32)
    assert resolve(mode, shape) is applied
    mean, std = statistics(x, applied)
    assert mean.shape == std.shape == statistics_shape
    assert mean.dtype == std.dtype == np.float32
    z = (x - mean) / std
    if applied is InputNormalization.NONE:
        assert (mean == 0).all() and (std == 1).all()
    elif applied is InputNormalization.PER_CHANNEL:
        channel = 1 if x.ndim == 4 else x.ndim - 1
        flat = np.moveaxis(z, channel, 0).reshape(shape[channel - 1], -1)
        np.testing.assert_allclose(flat.mean(1), 0, atol=1e-5)
        np.testing.assert_allclose(flat.std(1), 1, atol=1e-5)
    else:
        axes = 0 if applied is InputNormalization.PER_FEATURE else None
        np.testing.assert_allclose(z.mean(axis=axes), 0, atol=1e-5)
        np.testing.assert_allclose(z.std(axis=axes), 1, atol=1e-5)


def test_per_feature_matches_scikit_learns_standard_scaler() -> None:
    """StandardScaler's rule: a feature is constant (scale 1) when var <= n eps var + (n mean eps)^2."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 5)) * [1.0, 0.0, 1e-12, 3.0, 1e-3] + [0.0, 7.0, 1e4, -2.0, 5.0]
    x = x.astype(np.float32)
    mean, std = statistics(x, InputNormalization.PER_FEATURE)
    scaler = StandardScaler().fit(x)
    np.testing.assert_allclose(mean, scaler.mean_, rtol=1e-6)
    np.testing.assert_allclose(std, scaler.scale_, rtol=1e-6)
    assert std[1] == std[2] == 1.0  # constant, and constant to float32 precision


@pytest.mark.parametrize("mode", [InputNormalization.GLOBAL, InputNormalization.PER_CHANNEL])
def test_constant_channels_and_data_sets_are_scaled_by_one(mode: InputNormalization) -> None:
    x = np.full((20, 2, 3, 3), 4.0, dtype=np.float32)
    mean, std = statistics(x, mode)
    assert (std == 1).all() and (mean == 4).all()


def test_a_constant_regression_target_is_scaled_by_one() -> None:
    x = np.random.default_rng(3).normal(size=(40, 3)).astype(np.float32)
    split = split_dataset(Dataset(x, np.full(40, 2.5, np.float32), Task.REGRESSION), 0.25, 0.0, seed=0)
    assert split.y_std == 1.0 and split.y_mean == pytest.approx(2.5)
    assert (split.y_val == 0).all()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("source", ["images", "tabular", "sequences"])
def test_the_exported_model_applies_the_same_normalisation(
    source: str, mode: InputNormalization, tmp_path: Path
) -> None:
    """torch.export.load(path).module() on raw inputs = the trained network on normalised inputs."""
    rng = np.random.default_rng(4)
    data = {
        "images": inked_borders(200),
        "tabular": Dataset(
            (rng.normal(size=(120, 5)) * [1, 0, 30, 2, 1] + 9).astype(np.float32),
            (rng.normal(size=120) * 40 + 100).astype(np.float32),
            Task.REGRESSION,
        ),
        "sequences": Dataset(
            (rng.normal(size=(120, 6, 2)) * [1, 50]).astype(np.float32),
            np.arange(120) % 3,
            Task.CLASSIFICATION,
        ),
    }[source]
    split = split_dataset(data, 0.25, 0.0, seed=0, mode=mode)
    architecture = Architecture(
        layers=[Layer.model_validate({"type": "dense", "units": 8, "activation": "tanh"})]
    )
    model = build_model(architecture, split.input_shape, split.num_outputs).eval()
    export_model(model, split, tmp_path / "model.pt2")
    raw = torch.from_numpy(data.x[split.indices.validation])
    exported = torch.export.load(tmp_path / "model.pt2").module()(raw).detach().numpy()
    with torch.no_grad():
        direct = model(torch.from_numpy(split.x_val)).numpy()
    if split.task is Task.REGRESSION:
        direct = direct[:, 0] * split.y_std + split.y_mean
    np.testing.assert_allclose(exported, direct, rtol=1e-4, atol=1e-4)


def test_a_model_validates_as_well_as_it_trains_on_inked_borders(make_spec: MakeSpec, tmp_path: Path) -> None:
    """With per-feature std + 1e-6 the inked borders reached the network as ~1e8 and the validation loss
    exploded; with the default (auto: per channel) the validation loss stays of the training loss's order."""
    data = inked_borders()
    np.savez(tmp_path / "inked.npz", x=data.x, y=data.y)
    layers = [Layer.model_validate({"type": "dense", "units": 32, "activation": "relu"})]
    spec = make_spec(layers, str(tmp_path / "inked.npz"), epochs=4, learningRate=0.01, batchSize=32)
    (tmp_path / "run").mkdir()
    result = train(spec, tmp_path / "run")
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert result.phase == "Succeeded" and last["trainLoss"] < 0.5
    assert (
        last["loss"] < 5 * last["trainLoss"] + 0.1
        and result.test_metrics["loss"] < 5 * last["trainLoss"] + 0.1
    )
    architecture = json.loads((tmp_path / "run" / "architecture.json").read_text())
    assert architecture["normalization"] == "perChannel"
    assert (
        architecture["splitFingerprint"] == result.split_fingerprint == load_split(spec.training).fingerprint
    )
