"""Train one candidate: epochs of mini-batch steps, validation after each, the best epoch kept.

Per epoch: validation metrics to run_dir/metrics.jsonl, TensorBoard and the on_epoch hook, and a
checkpoint (run_dir/checkpoint.pt). SIGTERM stops after the current step with a checkpoint that
resumes mid-epoch (TrialSpec.resume_from). At the end the best epoch's weights are evaluated on the
validation and test splits and saved with an exported model and the architecture.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from kubenas_trainer import artifacts, profiling
from kubenas_trainer.checkpoint import CHECKPOINT_FILE, load_checkpoint, save_checkpoint
from kubenas_trainer.data import Split, load_split
from kubenas_trainer.metrics import classification_metrics, regression_metrics
from kubenas_trainer.models import build_model
from kubenas_trainer.optim import clip_gradients, learning_rate, make_optimizer, set_learning_rate
from kubenas_trainer.spec import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    Direction,
    ObjectiveRef,
    Task,
    TrialResult,
    TrialSpec,
    UnusableSpec,
)

EpochHook = Callable[[int, dict[str, float]], None]
EVAL_BATCH = 1024
DEVICE_MEMORY_SHARE = 0.5  # keep the data on the GPU when it takes at most this share of free memory


class Interrupted(Exception):
    """SIGTERM arrived; a checkpoint was written to `path`."""

    def __init__(self, epoch: int, path: Path) -> None:
        super().__init__(f"interrupted by SIGTERM in epoch {epoch}; checkpoint at {path}")
        self.path = path


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def configure(spec: TrialSpec) -> None:
    """Seed, threads and determinism, before any tensor exists."""
    if spec.training.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(spec.training.deterministic)
    threads = int(os.environ.get("KUBENAS_NUM_THREADS", "0"))
    if threads > 0:
        torch.set_num_threads(threads)
    torch.manual_seed(spec.seed)


def objective_of(spec: TrialSpec, task: Task) -> ObjectiveRef:
    """The metric picking the best epoch: the experiment's objective, or validation loss."""
    objective = spec.objective or ObjectiveRef(metric="loss", direction=Direction.MINIMIZE)
    reported = CLASSIFICATION_METRICS if task is Task.CLASSIFICATION else REGRESSION_METRICS
    if objective.metric == "trainingSeconds":  # not a property of an epoch's weights
        return ObjectiveRef(metric="loss", direction=Direction.MINIMIZE)
    if objective.metric not in reported:
        raise UnusableSpec(
            f"objective.metric: {objective.metric} is not reported for {task} data set "
            f"{spec.training.dataset!r} (it reports {', '.join(reported)})"
        )
    return objective


@dataclass
class Tensors:
    """The splits as tensors: on the device when they fit there, else on the CPU and moved per batch."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor | None
    y_test: Tensor | None
    device: torch.device

    @classmethod
    def of(cls, split: Split, device: torch.device) -> Tensors:
        arrays = [split.x_train, split.y_train, split.x_val, split.y_val]
        arrays += [a for a in (split.x_test, split.y_test) if a is not None]
        size = sum(a.nbytes for a in arrays)
        fits = device.type != "cuda" or size <= DEVICE_MEMORY_SHARE * torch.cuda.mem_get_info(device)[0]
        home = device if fits else torch.device("cpu")

        def put(a: np.ndarray | None) -> Tensor | None:
            return None if a is None else torch.from_numpy(a).to(home)

        x_train, y_train, x_val, y_val = (put(a) for a in arrays[:4])
        assert x_train is not None and y_train is not None and x_val is not None and y_val is not None
        return cls(x_train, y_train, x_val, y_val, put(split.x_test), put(split.y_test), device)

    def batch(self, x: Tensor, y: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        if x.device == self.device:
            return x[idx], y[idx]
        idx = idx.cpu()
        return x[idx].to(self.device, non_blocking=True), y[idx].to(self.device, non_blocking=True)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on a GPU when mixed precision is asked for; nothing otherwise."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def loss_fn(task: Task, label_smoothing: float = 0.0) -> Callable[[Tensor, Tensor], Tensor]:
    if task is Task.CLASSIFICATION:
        return lambda out, y: nn.functional.cross_entropy(out, y, label_smoothing=label_smoothing)
    return lambda out, y: nn.functional.mse_loss(out.squeeze(-1), y)


def evaluate(
    model: nn.Module, x: Tensor, y: Tensor, split: Split, data: Tensors, amp: bool
) -> dict[str, float]:
    """Quality metrics on one split; regression metrics in the target's own units."""
    model.eval()
    outputs = []
    with torch.no_grad(), autocast(data.device, amp):
        for start in range(0, len(x), EVAL_BATCH):
            idx = torch.arange(start, min(start + EVAL_BATCH, len(x)))
            xb, _ = data.batch(x, y, idx.to(x.device))
            outputs.append(model(xb).float())
    out = torch.cat(outputs)
    target = y.to(out.device)
    loss = loss_fn(split.task)(out, target).item()
    if split.task is Task.CLASSIFICATION:
        predicted = out.argmax(dim=1).cpu().numpy()
        return {**classification_metrics(target.cpu().numpy(), predicted, split.num_classes), "loss": loss}
    y_true = target.cpu().numpy() * split.y_std + split.y_mean
    y_pred = out.squeeze(-1).cpu().numpy() * split.y_std + split.y_mean
    values = regression_metrics(y_true, y_pred)
    return {**values, "loss": loss}


@dataclass
class Progress:
    """Where training stands: everything a checkpoint holds besides weights and optimizer state."""

    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps taken
    best_value: float | None = None
    best_epoch: int = 0
    best_weights: dict[str, Tensor] = field(default_factory=dict)
    stale: int = 0  # epochs since the objective last improved
    seconds: float = 0.0  # training time so far
    history: list[dict[str, float]] = field(default_factory=list)
    order: Tensor | None = None  # this epoch's sample order when stopped mid-epoch
    next_batch: int = 0
    partial_loss: float = 0.0  # sum of this epoch's batch losses so far


class StopFlag:
    """Set by SIGTERM (installed only in the main thread), checked after every step."""

    def __init__(self) -> None:
        self.raised = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        def handle(signum: int, frame: FrameType | None) -> None:
            self.raised = True

        try:
            previous = signal.signal(signal.SIGTERM, handle)
        except ValueError:  # not the main thread: no handler
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)


def _snapshot(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train(
    spec: TrialSpec, output_dir: Path, on_epoch: EpochHook | None = None, stop: StopFlag | None = None
) -> TrialResult:
    """Train spec's candidate into output_dir and report the best epoch's metrics."""
    configure(spec)
    device = pick_device()
    split = load_split(spec.training, spec.seed)
    model = build_model(spec.candidate.architecture, split.input_shape, split.num_outputs)
    objective = objective_of(spec, split.task)
    hp, training = spec.candidate.hyperparameters, spec.training
    model.to(device)
    data = Tensors.of(split, device)
    optimizer = make_optimizer(model.parameters(), hp)
    generator = torch.Generator(device="cpu").manual_seed(spec.seed)
    amp = training.mixed_precision
    criterion = loss_fn(split.task, hp.label_smoothing or 0.0)
    epochs = hp.epochs or training.epochs
    n, batch = len(data.x_train), hp.batch_size
    steps_per_epoch = math.ceil(n / batch)
    key = spec.candidate.key()
    checkpoint_path = output_dir / CHECKPOINT_FILE

    progress = Progress()
    if spec.resume_from:
        state = load_checkpoint(Path(spec.resume_from), key)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        generator.set_state(state["rng"]["shuffle"])
        progress = Progress(**state["progress"])

    def checkpoint() -> None:
        rng = {"torch": torch.get_rng_state(), "shuffle": generator.get_state()}
        fields = {k: v for k, v in progress.__dict__.items()}
        save_checkpoint(
            checkpoint_path,
            {
                "candidate": key,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": rng,
                "progress": fields,
            },
        )

    stop = stop or StopFlag()
    events = artifacts.EventLog(output_dir / "tensorboard")
    with (output_dir / "metrics.jsonl").open("w") as log, stop.installed():
        for past in progress.history:  # a resumed trial's file holds its whole curve
            log.write(json.dumps(past) + "\n")
        while progress.epoch < epochs:
            epoch = progress.epoch + 1
            started = time.perf_counter()
            if progress.order is None:
                progress.order = torch.randperm(n, generator=generator)
            order = progress.order.to(data.x_train.device)
            model.train()
            for index in range(progress.next_batch, steps_per_epoch):
                xb, yb = data.batch(data.x_train, data.y_train, order[index * batch : (index + 1) * batch])
                set_learning_rate(
                    optimizer, learning_rate(hp, progress.step, epochs * steps_per_epoch, steps_per_epoch)
                )
                optimizer.zero_grad(set_to_none=True)
                with autocast(device, amp):
                    loss = criterion(model(xb).float(), yb)
                loss.backward()  # type: ignore[no-untyped-call]
                clip_gradients(model, hp)
                optimizer.step()
                progress.step += 1
                progress.partial_loss += loss.item()
                progress.next_batch = index + 1
                if stop.raised:
                    progress.seconds += time.perf_counter() - started
                    checkpoint()
                    events.close()
                    raise Interrupted(epoch, checkpoint_path)
            train_loss = progress.partial_loss / steps_per_epoch
            step_seconds = time.perf_counter() - started
            metrics = evaluate(model, data.x_val, data.y_val, split, data, amp)
            if not np.isfinite(metrics["loss"]):
                events.close()
                raise FloatingPointError(f"validation loss is {metrics['loss']} at epoch {epoch}")
            seconds = time.perf_counter() - started
            progress.seconds += seconds
            metrics |= {
                "trainLoss": train_loss,
                "learningRate": optimizer.param_groups[0]["lr"],
                "epochSeconds": seconds,
                "samplesPerSecond": n / step_seconds,  # training steps only, validation excluded
                "trainingSeconds": progress.seconds,
            }
            value = metrics[objective.metric]
            better = progress.best_value is None or (
                value > progress.best_value
                if objective.direction is Direction.MAXIMIZE
                else value < progress.best_value
            )
            if better:
                progress.best_value, progress.best_epoch, progress.stale = value, epoch, 0
                progress.best_weights = _snapshot(model)
            else:
                progress.stale += 1
            progress.epoch, progress.order, progress.next_batch, progress.partial_loss = epoch, None, 0, 0.0
            progress.history.append({"epoch": epoch, **metrics})
            log.write(json.dumps({"epoch": epoch, **metrics}) + "\n")
            log.flush()
            events.epoch(epoch, metrics)
            if on_epoch is not None:
                on_epoch(epoch, metrics)
            checkpoint()
            patience = training.early_stopping_patience
            if patience is not None and progress.stale >= patience:
                break
    events.close()
    return _finish(spec, model, progress, split, data, output_dir, device)


def _finish(
    spec: TrialSpec,
    model: nn.Module,
    progress: Progress,
    split: Split,
    data: Tensors,
    output_dir: Path,
    device: torch.device,
) -> TrialResult:
    """Evaluate the best epoch's weights, measure costs, and write the artifacts."""
    amp = spec.training.mixed_precision
    model.load_state_dict(progress.best_weights)
    metrics = evaluate(model, data.x_val, data.y_val, split, data, amp)
    test: dict[str, float] = {}
    if data.x_test is not None and data.y_test is not None:
        test = evaluate(model, data.x_test, data.y_test, split, data, amp)
    epoch_seconds = [h["epochSeconds"] for h in progress.history]
    sample = data.x_val[:1].to(device)
    latency_batch = data.x_val[: min(256, len(data.x_val))].to(device)
    parameters = profiling.parameter_count(model)
    metrics |= {
        "trainingSeconds": progress.seconds,
        "epochSeconds": float(np.mean(epoch_seconds)),
        "samplesPerSecond": float(np.mean([h["samplesPerSecond"] for h in progress.history])),
        "parameters": float(parameters),
        "flops": float(profiling.forward_flops(model, sample)),
        "peakMemoryBytes": float(profiling.peak_memory_bytes(device)),
        "inferenceSecondsPerSample": profiling.inference_seconds_per_sample(model, latency_batch),
        **profiling.gpu_readings(device),
    }
    torch.save(model.state_dict(), output_dir / artifacts.WEIGHTS_FILE)
    artifacts.write_architecture(output_dir / artifacts.ARCHITECTURE_FILE, spec, split, parameters)
    message = ""
    try:
        artifacts.export_model(model, split, output_dir / artifacts.EXPORT_FILE)
    except Exception as error:  # the trained weights are still good; say what is missing
        message = f"no exported model: {type(error).__name__}: {error}"[:500]
    return TrialResult(
        name=spec.name,
        phase="Succeeded",
        metrics=metrics,
        test_metrics=test,
        epochs=progress.epoch,
        best_epoch=progress.best_epoch,
        message=message,
    )
