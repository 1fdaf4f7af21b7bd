"""One split per experiment: a function of training (splitSeed, fractions, data set) only, named by a
fingerprint that results and checkpoints carry; a checkpoint of another split is refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from kubenas_trainer.checkpoint import SPLIT_KEY
from kubenas_trainer.data import load_dataset, load_split
from kubenas_trainer.spec import Layer, Training, TrialResult, TrialSpec, UnusableSpec
from kubenas_trainer.train import train

MakeSpec = Callable[..., TrialSpec]
FINGERPRINT = r"[0-9a-f]{12}"
DENSE = [Layer.model_validate({"type": "dense", "units": 8, "activation": "relu"})]


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def test_the_split_ignores_the_trials_seed(make_spec: MakeSpec) -> None:
    a, b = (load_split(make_spec(DENSE, "wine", seed=seed).training) for seed in (1, 2))
    assert a.fingerprint == b.fingerprint
    assert np.array_equal(a.x_val, b.x_val) and np.array_equal(a.y_val, b.y_val)
    assert np.array_equal(a.indices.validation, b.indices.validation)


@pytest.mark.parametrize(
    "change",
    [
        {"splitSeed": 1},
        {"validationFraction": 0.3},
        {"testFraction": 0.1},
        {"dataset": "breast_cancer"},
        {"normalization": "global"},
    ],
)
def test_another_split_has_another_fingerprint(change: dict[str, object]) -> None:
    base = {"dataset": "wine", "testFraction": 0.2}
    assert (
        load_split(Training.model_validate(base)).fingerprint
        != load_split(Training.model_validate(base | change)).fingerprint
    )


@pytest.mark.parametrize("dataset", ["wine", "digits", "sunspots"])
def test_the_parts_are_disjoint_and_cover_every_sample(dataset: str) -> None:
    split = load_split(Training(dataset=dataset, testFraction=0.2, splitSeed=11))
    assert split.indices.test is not None and len(split.fingerprint) == 12
    parts = split.indices.train, split.indices.validation, split.indices.test
    together = np.concatenate(parts)
    assert len(together) == len(set(together.tolist())) == together.max() + 1
    assert split.x_test is not None
    raw = load_dataset(Training(dataset=dataset)).x
    for part, x in zip(parts, (split.x_train, split.x_val, split.x_test), strict=True):
        np.testing.assert_allclose(x, (raw[part] - split.x_mean) / split.x_std, rtol=1e-5, atol=1e-5)


def test_split_seed_is_validated() -> None:
    assert Training().split_seed == 0 and Training().to_dict()["splitSeed"] == 0
    assert Training.model_validate({"splitSeed": 2**31 - 1}).split_seed == 2**31 - 1
    for bad in (-1, 2**31):
        with pytest.raises(ValueError, match="splitSeed"):
            Training.model_validate({"splitSeed": bad})


def trained(spec: TrialSpec, run_dir: Path, **update: object) -> TrialResult:
    run_dir.mkdir()
    return train(spec.model_copy(update=update), run_dir)


def test_results_of_trials_with_different_seeds_carry_the_same_split_fingerprint(
    make_spec: MakeSpec, tmp_path: Path
) -> None:
    one = trained(make_spec(DENSE, "iris", epochs=2, seed=1), tmp_path / "one")
    two = trained(make_spec(DENSE, "iris", epochs=2, seed=2), tmp_path / "two", stop_at_epoch=1)
    assert (one.phase, two.phase) == ("Succeeded", "Paused")
    assert one.split_fingerprint == two.split_fingerprint is not None
    assert one.split_fingerprint == load_split(make_spec(DENSE, "iris").training).fingerprint
    message = TrialResult.model_validate_json(one.to_termination_message())
    assert message.split_fingerprint == one.split_fingerprint
    assert one.to_dict()["splitFingerprint"] == one.split_fingerprint


def test_start_from_and_resume_need_the_same_split(make_spec: MakeSpec, tmp_path: Path) -> None:
    spec = make_spec(DENSE, "iris", epochs=3)
    trained(spec, tmp_path / "parent", stop_at_epoch=1)
    checkpoint = str(tmp_path / "parent" / "checkpoint.pt")
    other = make_spec(DENSE, "iris", epochs=3, splitSeed=5)
    for field, key in (("startFrom", "start_from"), ("resumeFrom", "resume_from")):
        with pytest.raises(UnusableSpec, match=rf"{field}: .* was trained on split {FINGERPRINT}, this "):
            trained(other, tmp_path / f"refused-{key}", **{key: checkpoint})
        assert not (tmp_path / f"refused-{key}" / "metrics.jsonl").exists()  # refused before training

    child = trained(make_spec(DENSE, "iris", epochs=3, seed=9), tmp_path / "child", start_from=checkpoint)
    resumed = trained(spec, tmp_path / "resumed", resume_from=checkpoint)
    assert child.phase == resumed.phase == "Succeeded" and child.epochs == resumed.epochs == 3


def test_a_checkpoint_that_records_no_split_is_refused(make_spec: MakeSpec, tmp_path: Path) -> None:
    spec = make_spec(DENSE, "iris", epochs=2)
    trained(spec, tmp_path / "old", stop_at_epoch=1)
    path = tmp_path / "old" / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    assert state.pop(SPLIT_KEY) == load_split(spec.training).fingerprint
    torch.save(state, path)
    with pytest.raises(UnusableSpec, match=r"startFrom: .* was trained on split unknown") as error:
        trained(spec, tmp_path / "child", start_from=str(path))
    assert "training.splitSeed, dataset, fractions or normalization differ" in str(error.value)
