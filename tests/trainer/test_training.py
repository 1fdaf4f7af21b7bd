"""Training for real (small epochs, CPU): every family learns, quality bars, resume, SIGTERM, export."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from kubenas_trainer.artifacts import Deployable
from kubenas_trainer.data import load_split
from kubenas_trainer.models import build_model
from kubenas_trainer.spec import Layer, ObjectiveRef, TrialResult, TrialSpec, UnusableSpec
from kubenas_trainer.train import train

MakeSpec = Callable[..., TrialSpec]
RunTrainer = Callable[..., subprocess.CompletedProcess[str]]
Env = Callable[..., dict[str, str]]
TIMING = {"epochSeconds", "samplesPerSecond", "trainingSeconds"}


def layer(kind: str, units: int = 16, activation: str = "relu", **fields: object) -> Layer:
    return Layer.model_validate({"type": kind, "units": units, "activation": activation, **fields})


def curve(run_dir: Path) -> list[dict[str, float]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("layers", "dataset"),
    [
        ([layer("dense", 32, normalization="batch", residual=True)], "wine"),
        ([layer("conv2d", 8, pooling="max", normalization="batch")], "digits"),
        ([layer("conv1d", 8, kernelSize=5, pooling="avg", residual=True)], "sunspots"),
        ([layer("lstm", 16, "tanh", normalization="layer")], "sunspots"),
        ([layer("gru", 16, "tanh", bidirectional=True)], "sunspots"),
    ],
    ids=["dense", "conv2d", "conv1d", "lstm", "gru"],
)
def test_each_layer_family_trains(
    layers: list[Layer], dataset: str, make_spec: MakeSpec, tmp_path: Path
) -> None:
    result = train(make_spec(layers, dataset, epochs=6, learningRate=0.01, batchSize=32), tmp_path)
    losses = [e["trainLoss"] for e in curve(tmp_path)]
    assert result.phase == "Succeeded" and len(losses) == 6
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.slow
def test_mlp_on_digits_reaches_095_test_accuracy_and_reports_everything(
    make_spec: MakeSpec, run_trainer: RunTrainer, tmp_path: Path
) -> None:
    spec = make_spec([layer("dense", 128, dropout=0.1)], "digits", epochs=10)
    proc = run_trainer(spec)
    out = tmp_path / "out"
    result = TrialResult.model_validate_json((out / "result.json").read_text())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert result.test_metrics["accuracy"] >= 0.95
    assert set(result.test_metrics) == {"accuracy", "f1", "precision", "recall", "loss"}
    costs = {"parameters", "flops", "peakMemoryBytes", "inferenceSecondsPerSample", "samplesPerSecond"}
    assert costs | {"accuracy", "f1", "precision", "recall", "loss", "epochSeconds"} <= set(result.metrics)
    assert result.metrics["parameters"] == 64 * 128 + 128 + 128 * 10 + 10
    assert result.metrics["flops"] == 2 * (64 * 128 + 128 * 10)
    assert result.metrics["peakMemoryBytes"] > 10_000_000 and result.metrics["samplesPerSecond"] > 0
    assert result.best_epoch is not None and 1 <= result.best_epoch <= result.epochs == 10
    termination = (tmp_path / "termination-log").read_text()
    assert len(termination.encode()) <= 4096 and TrialResult.model_validate_json(termination) == result
    names = {p.name for p in out.iterdir()}
    assert {
        "model.pt",
        "model.pt2",
        "architecture.json",
        "metrics.jsonl",
        "checkpoint.pt",
        "tensorboard",
    } <= names
    architecture = json.loads((out / "architecture.json").read_text())
    assert architecture["inputShape"] == [1, 8, 8] and architecture["candidate"] == spec.candidate.to_dict()
    assert architecture["normalization"] == "perChannel"  # auto, on images
    assert architecture["splitFingerprint"] == result.split_fingerprint is not None

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    accuracy = events.Scalars("validation/accuracy")
    assert [s.step for s in accuracy] == list(range(1, 11))
    assert accuracy[-1].value == pytest.approx(curve(out)[-1]["accuracy"])


@pytest.mark.slow
def test_cnn_on_digits_images_beats_the_majority_baseline(make_spec: MakeSpec, tmp_path: Path) -> None:
    layers = [layer("conv2d", 16, pooling="max"), layer("conv2d", 32, pooling="max")]
    result = train(make_spec(layers, "digits", epochs=8), tmp_path)
    split = load_split(make_spec(layers, "digits").training)
    assert split.y_test is not None
    majority = np.bincount(split.y_test).max() / len(split.y_test)
    assert result.test_metrics["accuracy"] >= 0.9 > majority + 0.5


@pytest.mark.slow
def test_lstm_on_sunspots_beats_persistence_and_mean_forecasts(make_spec: MakeSpec, tmp_path: Path) -> None:
    spec = make_spec([layer("lstm", 32, "tanh")], "sunspots", epochs=25, learningRate=0.01, batchSize=32)
    result = train(spec, tmp_path)
    split = load_split(spec.training)
    assert split.x_test is not None and split.y_test is not None
    history = split.x_test * split.x_std + split.x_mean
    truth = split.y_test * split.y_std + split.y_mean
    persistence = float(np.mean((history[:, -1, 0] - truth) ** 2))  # next year = this year
    mean = float(np.mean((truth - (split.y_train * split.y_std + split.y_mean).mean()) ** 2))
    assert result.test_metrics["mse"] < persistence < mean
    assert result.test_metrics["r2"] > 0.5


@pytest.mark.slow
def test_regression_on_diabetes_beats_the_mean(make_spec: MakeSpec, tmp_path: Path) -> None:
    result = train(make_spec([layer("dense", 32)], "diabetes", epochs=20, learningRate=0.01), tmp_path)
    assert result.test_metrics["r2"] > 0.2 and set(result.metrics) >= {"mse", "mae", "r2", "loss"}


@pytest.mark.slow
def test_resume_from_a_checkpoint_continues_the_same_curve(make_spec: MakeSpec, tmp_path: Path) -> None:
    layers = [layer("dense", 64, dropout=0.3)]
    straight, first, second = (tmp_path / d for d in ("straight", "first", "second"))
    for d in (straight, first, second):
        d.mkdir()
    train(make_spec(layers, epochs=4), straight)
    train(make_spec(layers, epochs=2), first)
    resumed = make_spec(layers, epochs=4).model_copy(update={"resume_from": str(first / "checkpoint.pt")})
    result = train(resumed, second)
    assert result.epochs == 4 and len(curve(second)) == 4
    assert curve(second) == curve(straight)
    other = make_spec([layer("dense", 32)], epochs=4)
    with pytest.raises(ValueError, match=r"resumeFrom: .* holds candidate"):
        train(other.model_copy(update={"resume_from": str(first / "checkpoint.pt")}), second)


@pytest.mark.slow
def test_a_trial_paused_at_a_rung_and_continued_follows_the_uninterrupted_curve(
    make_spec: MakeSpec, tmp_path: Path
) -> None:
    """ASHA's pause and promote: stopAtEpoch pauses with a checkpoint, the continuation is seamless
    (the cosine schedule spans all 4 epochs in both runs)."""
    layers = [layer("dense", 64, dropout=0.3)]
    straight, rung = tmp_path / "straight", tmp_path / "rung"
    straight.mkdir(), rung.mkdir()
    spec = make_spec(layers, epochs=4, schedule="cosine")
    train(spec, straight)
    paused = train(spec.model_copy(update={"stop_at_epoch": 2}), rung)
    assert paused.phase == "Paused" and paused.epochs == 2 and paused.test_metrics == {}
    assert paused.metrics["accuracy"] == curve(rung)[-1]["accuracy"]  # the last epoch, not the best
    assert not (rung / "model.pt2").exists()
    promoted = spec.model_copy(update={"resume_from": str(rung / "checkpoint.pt"), "stop_at_epoch": 4})
    result = train(promoted, rung)
    assert result.phase == "Succeeded" and result.epochs == 4
    assert curve(rung) == curve(straight)


@pytest.mark.slow
def test_start_from_another_trials_checkpoint_keeps_its_weights_and_epochs(
    make_spec: MakeSpec, tmp_path: Path
) -> None:
    """PBT's exploit and MIHA's clones: new hyperparameters, the parent's weights and epoch count."""
    parent_dir, child_dir, fresh_dir, bad_dir = (tmp_path / d for d in ("parent", "child", "fresh", "bad"))
    for d in (parent_dir, child_dir, fresh_dir, bad_dir):
        d.mkdir()
    layers = [layer("dense", 64)]
    parent = train(make_spec(layers, epochs=6).model_copy(update={"stop_at_epoch": 3}), parent_dir)
    assert parent.phase == "Paused"
    child_spec = make_spec(layers, epochs=6, learningRate=0.001, batchSize=32)
    child = train(child_spec.model_copy(update={"start_from": str(parent_dir / "checkpoint.pt")}), child_dir)
    assert child.phase == "Succeeded" and child.epochs == 6
    child_curve = curve(child_dir)
    assert [row["epoch"] for row in child_curve] == [1, 2, 3, 4, 5, 6]
    assert child_curve[:3] == curve(parent_dir)  # the parent's epochs, then the child's own
    assert child_curve[3]["learningRate"] == pytest.approx(0.001)
    # The child's first epoch starts from trained weights: far below a first epoch from scratch.
    train(child_spec.model_copy(update={"stop_at_epoch": 1}), fresh_dir)
    assert child_curve[3]["loss"] < 0.7 * curve(fresh_dir)[0]["loss"]
    wider = make_spec([layer("dense", 32)], epochs=6)
    with pytest.raises(UnusableSpec, match=r"startFrom: .* weights of another shape"):
        train(wider.model_copy(update={"start_from": str(parent_dir / "checkpoint.pt")}), bad_dir)


@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_and_resume_finishes_the_same_curve(
    make_spec: MakeSpec, run_trainer: RunTrainer, trainer_env: Env, tmp_path: Path
) -> None:
    spec = make_spec([layer("dense", 64, dropout=0.2)], epochs=6, batchSize=8)
    reference = tmp_path / "reference"
    reference.mkdir()
    expected = train(spec, reference)  # in this process, also with one thread: the same arithmetic

    out = tmp_path / "out"
    env = trainer_env(
        KUBENAS_TRIAL_SPEC=spec.model_dump_json(by_alias=True, exclude_none=True),
        KUBENAS_TERMINATION_LOG=str(tmp_path / "termination-log"),
    )
    command = [sys.executable, "-m", "kubenas_trainer", "--output", str(out)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-2000:]
    stopped = TrialResult.model_validate_json((out / "result.json").read_text())
    assert stopped.phase == "Failed" and "interrupted by SIGTERM" in stopped.message
    assert stopped.reason == "Interrupted"
    assert (out / "checkpoint.pt").is_file() and "Traceback" not in stderr

    finished = run_trainer(spec, "--resume", output=out)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert curve(out) == curve(reference)
    resumed = TrialResult.model_validate_json((out / "result.json").read_text())
    assert resumed.test_metrics == expected.test_metrics


EXPORT_CHECK = """
import sys, json
class Block:
    def find_spec(self, name, *args):
        if name.split('.')[0] in ('kubenas', 'kubenas_trainer'):
            raise ImportError('kubenas code must not be needed: ' + name)
sys.meta_path.insert(0, Block())
import numpy as np, torch
model = torch.export.load(sys.argv[1]).module()
x = torch.from_numpy(np.load(sys.argv[2]))
np.save(sys.argv[3], model(x).detach().numpy())
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("layers", "dataset"),
    [
        (
            [layer("conv2d", 8, pooling="max", normalization="batch"), layer("dense", 16, dropout=0.2)],
            "digits",
        ),
        ([layer("gru", 8, "tanh", bidirectional=True, residual=True)], "sunspots"),
    ],
    ids=["cnn-classifier", "gru-forecaster"],
)
def test_exported_model_predicts_like_the_trained_one_without_kubenas(
    layers: list[Layer], dataset: str, make_spec: MakeSpec, trainer_env: Env, tmp_path: Path
) -> None:
    spec: TrialSpec = make_spec(layers, dataset, epochs=2)
    train(spec, tmp_path)
    split = load_split(spec.training)
    assert split.x_test is not None
    raw = (split.x_test * split.x_std + split.x_mean).astype(np.float32)
    np.save(tmp_path / "x.npy", raw)
    check = [sys.executable, "-c", EXPORT_CHECK, str(tmp_path / "model.pt2"), str(tmp_path / "x.npy")]
    subprocess.run([*check, str(tmp_path / "y.npy")], check=True, timeout=120, env=trainer_env())
    exported = np.load(tmp_path / "y.npy")

    model = build_model(spec.candidate.architecture, split.input_shape, split.num_outputs)
    model.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    with torch.no_grad():
        trained = Deployable(model, split).eval()(torch.from_numpy(raw)).numpy()
        direct = model.eval()(torch.from_numpy(split.x_test)).numpy()
    assert exported.shape == trained.shape == (len(raw), *(() if split.num_classes == 0 else (10,)))
    np.testing.assert_allclose(exported, trained, rtol=1e-4, atol=1e-4)
    if split.num_classes:
        assert np.array_equal(exported.argmax(1), direct.argmax(1))
    else:
        np.testing.assert_allclose(exported, direct[:, 0] * split.y_std + split.y_mean, rtol=1e-4, atol=1e-3)


@pytest.mark.slow
def test_early_stopping_after_patience_epochs_and_the_epoch_hook(make_spec: MakeSpec, tmp_path: Path) -> None:
    spec = make_spec([layer("dense", 16)], "iris", epochs=20, learningRate=1e-9, earlyStoppingPatience=2)
    spec = spec.model_copy(update={"objective": ObjectiveRef(metric="accuracy", direction="maximize")})
    reported: list[tuple[int, float]] = []
    result = train(
        spec, tmp_path, on_epoch=lambda epoch, metrics: reported.append((epoch, metrics["accuracy"]))
    )
    assert result.epochs == 3 and result.best_epoch == 1 and len(curve(tmp_path)) == 3
    assert reported == [(e["epoch"], e["accuracy"]) for e in curve(tmp_path)]  # the per-epoch hook


@pytest.mark.slow
def test_every_training_option_runs_and_deterministic_mode_repeats(
    make_spec: MakeSpec, tmp_path: Path
) -> None:
    options = {
        "optimizer": "sgd",
        "learningRate": 0.05,
        "momentum": 0.8,
        "weightDecay": 1e-4,
        "schedule": "cosine",
        "warmupEpochs": 1,
        "gradientClip": 0.5,
        "gradientClipMode": "value",
        "labelSmoothing": 0.1,
        "mixedPrecision": True,  # bf16 on a GPU; a no-op on this CPU
        "deterministic": True,
    }
    spec = make_spec([layer("dense", 32, "gelu", normalization="layer")], epochs=3, **options)
    assert spec.training.deterministic and spec.candidate.hyperparameters.gradient_clip == 0.5
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = train(spec, tmp_path / "a")
    train(spec, tmp_path / "b")
    assert a.phase == "Succeeded" and a.metrics["accuracy"] > 0.5
    assert curve(tmp_path / "a") == curve(tmp_path / "b")
    lrs = [e["learningRate"] for e in curve(tmp_path / "a")]
    assert lrs[0] == pytest.approx(0.05) and lrs[-1] < 0.01  # warm-up peak, then cosine towards 0
    torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize(
    ("layers", "dataset", "objective", "message"),
    [
        (
            [layer("conv2d")],
            "iris",
            None,
            "architecture.layers[0] (conv2d): needs an image (channels, height, width) as input, "
            "but gets features of shape (4,)",
        ),
        (
            [layer("dense"), layer("lstm")],
            "sunspots",
            None,
            "architecture.layers[1] (lstm): needs a sequence (length, channels) or an image",
        ),
        (
            [layer("dense")],
            "diabetes",
            {"metric": "accuracy", "direction": "maximize"},
            "objective.metric: accuracy is not reported for regression data set 'diabetes'",
        ),
    ],
)
def test_specs_that_cannot_run_on_their_data_fail_before_training(
    layers: list[Layer],
    dataset: str,
    objective: dict[str, str] | None,
    message: str,
    make_spec: MakeSpec,
    tmp_path: Path,
) -> None:
    goal = None if objective is None else ObjectiveRef.model_validate(objective)
    with pytest.raises(UnusableSpec) as error:
        train(make_spec(layers, dataset).model_copy(update={"objective": goal}), tmp_path)
    assert message in str(error.value)
    assert not (tmp_path / "metrics.jsonl").exists()


def test_the_trainer_reports_an_unusable_spec_with_exit_status_2(
    make_spec: MakeSpec, run_trainer: RunTrainer, tmp_path: Path
) -> None:
    proc = run_trainer(make_spec([layer("conv2d")], "iris"))
    result = TrialResult.model_validate_json((tmp_path / "out" / "result.json").read_text())
    assert proc.returncode == 2 and (result.phase, result.reason) == ("Failed", "InvalidCandidate")
    assert result.message.startswith("invalid trial spec: architecture.layers[0] (conv2d): needs an image")
