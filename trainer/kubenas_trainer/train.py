"""Train one candidate and evaluate it on the validation split, epoch by epoch."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kubenas_trainer.data import Split, load_split
from kubenas_trainer.metrics import accuracy, macro_f1
from kubenas_trainer.models import build_model
from kubenas_trainer.spec import Hyperparameters, Optimizer, TrialResult, TrialSpec

EpochHook = Callable[[int, dict[str, float]], None]


def make_optimizer(params: Iterator[nn.Parameter], hp: Hyperparameters) -> torch.optim.Optimizer:
    lr = hp.learning_rate
    factories: dict[Optimizer, Callable[[], torch.optim.Optimizer]] = {
        Optimizer.ADAM: lambda: torch.optim.Adam(params, lr=lr),
        Optimizer.ADAMW: lambda: torch.optim.AdamW(params, lr=lr),
        Optimizer.SGD: lambda: torch.optim.SGD(params, lr=lr, momentum=0.9),
        Optimizer.RMSPROP: lambda: torch.optim.RMSprop(params, lr=lr),
        Optimizer.ADAGRAD: lambda: torch.optim.Adagrad(params, lr=lr),
        Optimizer.ADADELTA: lambda: torch.optim.Adadelta(params, lr=lr),
    }
    return factories[hp.optimizer]()


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y).item()
    y_true, y_pred = y.cpu().numpy(), logits.argmax(dim=1).cpu().numpy()
    return {"accuracy": accuracy(y_true, y_pred), "f1": macro_f1(y_true, y_pred, num_classes), "loss": loss}


def train(spec: TrialSpec, output_dir: Path, on_epoch: EpochHook | None = None) -> TrialResult:
    """Train spec's candidate; per-epoch validation metrics go to output_dir/metrics.jsonl."""
    torch.manual_seed(spec.seed)
    threads = int(os.environ.get("KUBENAS_NUM_THREADS", "0"))
    if threads > 0:
        torch.set_num_threads(threads)
    device = pick_device()
    split: Split = load_split(spec.training.dataset, spec.training.validation_fraction, spec.seed)
    x_train = torch.from_numpy(split.x_train).to(device)
    y_train = torch.from_numpy(split.y_train).to(device)
    x_val, y_val = torch.from_numpy(split.x_val).to(device), torch.from_numpy(split.y_val).to(device)

    model = build_model(spec.candidate.architecture, split.num_features, split.num_classes).to(device)
    optimizer = make_optimizer(model.parameters(), spec.candidate.hyperparameters)
    batch = spec.candidate.hyperparameters.batch_size
    generator = torch.Generator(device="cpu").manual_seed(spec.seed)
    metrics: dict[str, float] = {}
    started = time.perf_counter()
    with (output_dir / "metrics.jsonl").open("w") as log:
        for epoch in range(1, spec.training.epochs + 1):
            model.train()
            order = torch.randperm(len(x_train), generator=generator).to(device)
            for start in range(0, len(order), batch):
                idx = order[start : start + batch]
                optimizer.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
            metrics = evaluate(model, x_val, y_val, split.num_classes)
            if not np.isfinite(metrics["loss"]):
                raise FloatingPointError(f"validation loss is {metrics['loss']} at epoch {epoch}")
            metrics["trainingSeconds"] = time.perf_counter() - started
            log.write(json.dumps({"epoch": epoch, **metrics}) + "\n")
            log.flush()
            if on_epoch is not None:
                on_epoch(epoch, metrics)
    return TrialResult(name=spec.name, phase="Succeeded", metrics=metrics, epochs=spec.training.epochs)
