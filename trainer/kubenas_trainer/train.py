"""Train one candidate: epochs of mini-batch steps, validation after each, the best epoch kept.

Per epoch: validation metrics (with GPU utilisation and power where the driver reports them) to
run_dir/metrics.jsonl, TensorBoard and the on_epoch hook, and a checkpoint (run_dir/checkpoint.pt), after
which observers (live metrics, uploads) are told. SIGTERM stops after the current step with a checkpoint
that resumes mid-epoch (TrialSpec.resume_from). At the end the best epoch's weights are evaluated on the
validation and test splits and saved with an exported model and the architecture.

The data split is the experiment's (training.splitSeed), the trial's seed only initialises weights and
shuffles batches; results and checkpoints carry the split's fingerprint, and a checkpoint of another
split is refused (resumeFrom, startFrom).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from kubenas_trainer import artifacts, profiling
from kubenas_trainer.checkpoint import CHECKPOINT_FILE, SPLIT_KEY, load_checkpoint, save_checkpoint
from kubenas_trainer.data import load_split
from kubenas_trainer.device import Tensors, autocast, pick_device
from kubenas_trainer.evaluation import evaluate, loss_fn
from kubenas_trainer.models import build_model
from kubenas_trainer.optim import clip_gradients, learning_rate, make_optimizer, set_learning_rate
from kubenas_trainer.preflight import objective_of
from kubenas_trainer.shapes import check_candidate
from kubenas_trainer.spec import METRICS_FILE, Direction, TrialResult, TrialSpec, UnusableSpec
from kubenas_trainer.stopping import Interrupted, StopFlag

EpochHook = Callable[[int, dict[str, float]], None]


def configure(spec: TrialSpec) -> None:
    """Seed, threads and determinism, before any tensor exists."""
    if spec.training.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    if spec.training.deterministic or torch.are_deterministic_algorithms_enabled():  # the call costs seconds
        torch.use_deterministic_algorithms(spec.training.deterministic)
    threads = int(os.environ.get("KUBENAS_NUM_THREADS", "0"))
    if threads > 0:
        torch.set_num_threads(threads)
    torch.manual_seed(spec.seed)


def batch_count(samples: int, batch_size: int) -> int:
    """Steps per epoch: a last batch of a single sample joins the one before it (batch normalisation
    cannot train on one sample, and PyTorch fails at such a step)."""
    steps = math.ceil(samples / batch_size)
    return steps - 1 if steps > 1 and samples % batch_size == 1 else steps


@dataclass
class TrainingState:
    """Where training stands: everything a checkpoint holds besides weights and optimizer state."""

    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps taken
    best_value: float | None = None
    best_epoch: int = 0
    best_weights: dict[str, Tensor] = field(default_factory=dict)
    stale: int = 0  # epochs since the objective last improved
    seconds: float = 0.0  # training time so far
    history: list[dict[str, float]] = field(default_factory=list)
    order: Tensor | None = None  # this epoch's sample order, kept when stopped mid-epoch
    next_batch: int = 0
    partial_loss: float = 0.0  # sum of this epoch's batch losses so far
    ended: dict[int, float] = field(default_factory=dict)  # unix time each epoch ended (when recorded)


class Observer(Protocol):
    """Follows training from beside it (report.Pusher, uploader.Uploader); each call returns at once."""

    def started(self, progress: TrainingState) -> None:
        """Training begins, after any resume or start from another trial's checkpoint."""

    def saved(self, progress: TrainingState) -> None:
        """An epoch ended and its checkpoint (and metrics.jsonl row) is written."""


class Trial:
    """One candidate's training: its data, model, optimizer, shuffling and progress."""

    def __init__(self, spec: TrialSpec, output_dir: Path) -> None:
        self.spec, self.output_dir = spec, output_dir
        self.split = load_split(spec.training)  # the experiment's split, whatever this trial's seed
        self.objective = objective_of(spec, self.split.task)  # these two reject an unusable spec before
        check_candidate(spec.candidate, self.split.input_shape)  # torch does anything
        configure(spec)
        self.device = pick_device()
        self.model = build_model(spec.candidate.architecture, self.split.input_shape, self.split.num_outputs)
        self.hp = spec.candidate.hyperparameters
        self.model.to(self.device)
        self.data = Tensors.of(self.split, self.device)
        self.optimizer = make_optimizer(self.model.parameters(), self.hp)
        self.generator = torch.Generator(device="cpu").manual_seed(spec.seed)
        self.criterion = loss_fn(self.split.task, self.hp.label_smoothing or 0.0)
        self.amp = spec.training.mixed_precision
        self.epochs = self.hp.epochs or spec.training.epochs
        self.steps_per_epoch = batch_count(len(self.data.x_train), self.hp.batch_size)
        self.checkpoint_path = output_dir / CHECKPOINT_FILE
        self.progress = TrainingState()
        if spec.resume_from:
            self.resume(spec.resume_from)
        elif spec.start_from:
            self.start_from(spec.start_from)

    def resume(self, location: str) -> None:
        state = load_checkpoint(
            location,
            self.spec.candidate.key(),
            self.split.fingerprint,
            store=self.spec.storage,
            scratch=self.output_dir,
        )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        self.generator.set_state(state["rng"]["shuffle"])
        self.progress = TrainingState(**state["progress"])
        print(f"resumed from {location} after epoch {self.progress.epoch}", flush=True)

    def start_from(self, location: str) -> None:
        """Begin from another trial's checkpoint: its weights, epochs and curve, with this trial's
        hyperparameters (the optimizer's moments carry over only when the optimizer is the same)."""
        state = load_checkpoint(
            location, None, self.split.fingerprint, "startFrom", self.spec.storage, scratch=self.output_dir
        )
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as error:
            raise UnusableSpec(f"startFrom: {location} holds weights of another shape: {error}") from error
        if state.get("optimizerName") == self.hp.optimizer.value:
            settings = [{k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups]
            self.optimizer.load_state_dict(state["optimizer"])
            for group, own in zip(self.optimizer.param_groups, settings, strict=True):
                group.update(own)  # this trial's weight decay, momentum …; the moments are the parent's
        parent = TrainingState(**state["progress"])
        self.progress = TrainingState(
            epoch=parent.epoch,
            step=parent.epoch * self.steps_per_epoch,  # the schedule's position, in this batch size
            seconds=parent.seconds,
            history=list(parent.history),
            ended=dict(parent.ended),
        )
        print(f"started from {location} after epoch {parent.epoch}", flush=True)

    def checkpoint(self) -> None:
        save_checkpoint(
            self.checkpoint_path,
            {
                "candidate": self.spec.candidate.key(),
                SPLIT_KEY: self.split.fingerprint,
                "optimizerName": self.hp.optimizer.value,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "rng": {"torch": torch.get_rng_state(), "shuffle": self.generator.get_state()},
                "progress": asdict(self.progress),
            },
        )

    def train_epoch(self, stop: StopFlag) -> dict[str, float]:
        """The rest of the current epoch's steps, then its validation metrics."""
        progress, batch, n = self.progress, self.hp.batch_size, len(self.data.x_train)
        started, first = time.perf_counter(), progress.next_batch
        if progress.order is None:
            progress.order = torch.randperm(n, generator=self.generator)
        order = progress.order.to(self.data.x_train.device)
        total_steps = self.epochs * self.steps_per_epoch
        self.model.train()
        for index in range(first, self.steps_per_epoch):
            end = n if index == self.steps_per_epoch - 1 else (index + 1) * batch
            xb, yb = self.data.batch(self.data.x_train, self.data.y_train, order[index * batch : end])
            set_learning_rate(
                self.optimizer, learning_rate(self.hp, progress.step, total_steps, self.steps_per_epoch)
            )
            self.optimizer.zero_grad(set_to_none=True)
            with autocast(self.device, self.amp):
                loss = self.criterion(self.model(xb).float(), yb)
            loss.backward()  # type: ignore[no-untyped-call]
            clip_gradients(self.model, self.hp)
            self.optimizer.step()
            progress.step, progress.next_batch = progress.step + 1, index + 1
            progress.partial_loss += loss.item()
            if stop.raised:
                progress.seconds += time.perf_counter() - started
                self.checkpoint()
                raise Interrupted(progress.epoch + 1, self.checkpoint_path)
        step_seconds = time.perf_counter() - started
        metrics = evaluate(self.model, self.data.x_val, self.data.y_val, self.split, self.data, self.amp)
        if not np.isfinite(metrics["loss"]):
            raise FloatingPointError(f"validation loss is {metrics['loss']} at epoch {progress.epoch + 1}")
        seconds = time.perf_counter() - started
        progress.seconds += seconds
        return metrics | {
            "trainLoss": progress.partial_loss / self.steps_per_epoch,
            "learningRate": self.optimizer.param_groups[0]["lr"],
            "epochSeconds": seconds,
            "samplesPerSecond": (n - first * batch) / step_seconds,
            "trainingSeconds": progress.seconds,
            **profiling.gpu_readings(self.device),
        }

    def end_epoch(self, metrics: dict[str, float]) -> bool:
        """Record the epoch (keeping the best weights); whether early stopping says to stop."""
        progress, value = self.progress, metrics[self.objective.metric]
        best = progress.best_value
        maximize = self.objective.direction is Direction.MAXIMIZE
        if best is None or (value > best if maximize else value < best):
            progress.best_value, progress.best_epoch, progress.stale = value, progress.epoch + 1, 0
            progress.best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            progress.stale += 1
        progress.epoch += 1
        progress.order, progress.next_batch, progress.partial_loss = None, 0, 0.0
        progress.history.append({"epoch": progress.epoch, **metrics})
        progress.ended[progress.epoch] = time.time()
        patience = self.spec.training.early_stopping_patience
        return patience is not None and progress.stale >= patience

    def curve(self) -> list[float]:
        return [float(f"{row[self.objective.metric]:.6g}") for row in self.progress.history]

    def paused(self) -> TrialResult:
        """The result at a pause: the last epoch's validation metrics, i.e. the checkpoint's state."""
        last = {k: v for k, v in self.progress.history[-1].items() if k != "epoch"}
        return TrialResult(
            name=self.spec.name,
            phase="Paused",
            metrics=last | {"trainingSeconds": self.progress.seconds},
            epochs=self.progress.epoch,
            best_epoch=self.progress.best_epoch or None,
            curve=self.curve(),
            message=f"paused after epoch {self.progress.epoch} of {self.epochs}",
            split_fingerprint=self.split.fingerprint,
        )

    def finish(self) -> TrialResult:
        """Evaluate the best epoch's weights, measure costs, and write the artifacts."""
        model, split, data, device, progress = self.model, self.split, self.data, self.device, self.progress
        if progress.best_weights:  # empty when a start-from trial had no epoch left to train
            model.load_state_dict(progress.best_weights)
        metrics = evaluate(model, data.x_val, data.y_val, split, data, self.amp)
        test: dict[str, float] = {}
        if data.x_test is not None and data.y_test is not None:
            test = evaluate(model, data.x_test, data.y_test, split, data, self.amp)
        parameters = profiling.parameter_count(model)
        metrics |= {
            "trainingSeconds": progress.seconds,
            "epochSeconds": float(np.mean([h["epochSeconds"] for h in progress.history])),
            "samplesPerSecond": float(np.mean([h["samplesPerSecond"] for h in progress.history])),
            "parameters": float(parameters),
            "flops": float(profiling.forward_flops(model, data.x_val[:1].to(device))),
            "peakMemoryBytes": float(profiling.peak_memory_bytes(device)),
            "inferenceSecondsPerSample": profiling.inference_seconds_per_sample(
                model, data.x_val[:256].to(device)
            ),
            **profiling.gpu_readings(device),
        }
        out = self.output_dir
        torch.save(model.state_dict(), out / artifacts.WEIGHTS_FILE)
        artifacts.write_architecture(out / artifacts.ARCHITECTURE_FILE, self.spec, split, parameters)
        message = ""
        try:
            artifacts.export_model(model, split, out / artifacts.EXPORT_FILE)
        except Exception as error:  # the trained weights are still good; say what is missing
            message = f"no exported model: {type(error).__name__}: {error}"[:500]
        return TrialResult(
            name=self.spec.name,
            phase="Succeeded",
            metrics=metrics,
            test_metrics=test,
            epochs=progress.epoch,
            best_epoch=progress.best_epoch,
            curve=self.curve(),
            message=message,
            split_fingerprint=split.fingerprint,
        )


def train(
    spec: TrialSpec,
    output_dir: Path,
    on_epoch: EpochHook | None = None,
    stop: StopFlag | None = None,
    observers: Sequence[Observer] = (),
) -> TrialResult:
    """Train spec's candidate into output_dir and report the best epoch's metrics."""
    events = artifacts.EventLog(output_dir / "tensorboard", spec)
    with contextlib.closing(events), events.failures_recorded():
        result = _train(spec, output_dir, events, on_epoch, stop or StopFlag(), observers)
        events.result(result)
    return result


def _train(
    spec: TrialSpec,
    output_dir: Path,
    events: artifacts.EventLog,
    on_epoch: EpochHook | None,
    stop: StopFlag,
    observers: Sequence[Observer],
) -> TrialResult:
    trial = Trial(spec, output_dir)
    pause_at = min(trial.epochs, spec.stop_at_epoch or trial.epochs)
    stopping = False
    with (output_dir / METRICS_FILE).open("w") as log, stop.installed():
        for past in trial.progress.history:  # a resumed trial's file holds its whole curve
            log.write(json.dumps(past) + "\n")
        log.flush()
        for observer in observers:
            observer.started(trial.progress)
        while trial.progress.epoch < pause_at:
            metrics = trial.train_epoch(stop)
            stopping = trial.end_epoch(metrics)
            log.write(json.dumps(trial.progress.history[-1]) + "\n")
            log.flush()
            events.epoch(trial.progress.epoch, metrics)
            if on_epoch is not None:
                on_epoch(trial.progress.epoch, metrics)
            trial.checkpoint()
            for observer in observers:
                observer.saved(trial.progress)
            if stopping:
                break
    if not stopping and pause_at <= trial.progress.epoch < trial.epochs:
        return trial.paused()
    return trial.finish()
