"""What a trial leaves in its run directory besides metrics: weights, an exported model, the architecture.

The exported model (model.pt2, torch.export) takes raw inputs and returns class logits or regression
predictions in the data's own units: the input normalisation, (x - x_mean) / x_std with the training
split's statistics (shaped to broadcast against one sample), is built in, so it predicts with no kubenas code:
    torch.export.load("model.pt2").module()(x)
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from kubenas_trainer import hparams
from kubenas_trainer.data import Split
from kubenas_trainer.spec import Task, TrialResult, TrialSpec
from kubenas_trainer.stopping import Interrupted

WEIGHTS_FILE = "model.pt"
EXPORT_FILE = "model.pt2"
ARCHITECTURE_FILE = "architecture.json"


class Deployable(nn.Module):
    """The trained network with the data's normalisation around it."""

    def __init__(self, model: nn.Module, split: Split) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("x_mean", torch.from_numpy(split.x_mean))
        self.register_buffer("x_std", torch.from_numpy(split.x_std))
        self.regression = split.task is Task.REGRESSION
        self.y_mean, self.y_std = split.y_mean, split.y_std

    x_mean: Tensor
    x_std: Tensor

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.model((x - self.x_mean) / self.x_std)
        return out.squeeze(-1) * self.y_std + self.y_mean if self.regression else out


def export_model(model: nn.Module, split: Split, path: Path) -> None:
    """Save model (on CPU, eval mode) with torch.export, the batch dimension left dynamic."""
    deployable = Deployable(model, split).cpu().eval()
    example = torch.from_numpy(split.x_val[:2] * split.x_std + split.x_mean)
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(deployable, (example,), dynamic_shapes=({0: batch},))
        torch.export.save(program, path)


def write_architecture(path: Path, spec: TrialSpec, split: Split, parameters: int) -> None:
    """The candidate plus what the data set decided: input shape, task, outputs, the input normalisation
    applied (auto resolved) and the split's fingerprint."""
    document = {
        "candidate": spec.candidate.to_dict(),
        "dataset": spec.training.dataset,
        "task": str(split.task),
        "inputShape": list(split.input_shape),
        "numOutputs": split.num_outputs,
        "numClasses": split.num_classes,
        "normalization": str(split.normalization),
        "splitSeed": spec.training.split_seed,
        "splitFingerprint": split.fingerprint,
        "parameters": parameters,
        "exportedModel": EXPORT_FILE,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


class EventLog:
    """TensorBoard event files under run_dir/tensorboard: scalars per epoch (train/, validation/, system/)
    and the trial's HParams session (kubenas_trainer.hparams): its start with the candidate's
    hyperparameters, the result's metrics (result/, test/) after each segment, and its end when the trial
    succeeds or fails. A pause or an interruption ends no session: the trial continues in this run."""

    def __init__(self, directory: Path, spec: TrialSpec) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.writer import FileWriter

        self.writer = SummaryWriter(log_dir=str(directory))
        events = self.writer.file_writer
        assert events is not None  # opened on construction
        self._events: FileWriter = events
        self._add(hparams.session_start(spec.name, hparams.flatten(spec.candidate)), 0)

    def _add(self, summary: object, step: int) -> None:
        self._events.add_summary(summary, step)
        self.writer.flush()

    def epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            group = "train" if name.startswith("train") or name == "learningRate" else "validation"
            group = "system" if name.startswith("gpu") else group
            self.writer.add_scalar(f"{group}/{name}", value, epoch)
        self.writer.flush()

    def result(self, result: TrialResult) -> None:
        """The segment's result as scalars at its last epoch; a succeeded trial's session ends."""
        trained = {"epochs": float(result.epochs)}
        groups = {hparams.RESULT_GROUP: result.metrics | trained, hparams.TEST_GROUP: result.test_metrics}
        for group, metrics in groups.items():
            for name, value in metrics.items():
                self.writer.add_scalar(f"{group}/{name}", value, result.epochs)
        if result.phase == "Succeeded":
            self._add(hparams.session_end("success"), result.epochs)
        self.writer.flush()

    @contextlib.contextmanager
    def failures_recorded(self) -> Iterator[None]:
        """End the session as failed if the body raises (except on SIGTERM: the trial resumes later)."""
        try:
            yield
        except Interrupted:
            raise
        except Exception:
            self._add(hparams.session_end("failure"), 0)
            raise

    def close(self) -> None:
        self.writer.close()
