"""Losses and the quality metrics of a model on one split."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from kubenas_trainer.data import Split
from kubenas_trainer.device import Tensors, autocast
from kubenas_trainer.metrics import classification_metrics, regression_metrics
from kubenas_trainer.spec import Task

EVAL_BATCH = 1024


def loss_fn(task: Task, label_smoothing: float = 0.0) -> Callable[[Tensor, Tensor], Tensor]:
    """Cross-entropy for classes, mean squared error (on standardised targets) for regression."""
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
    return {**regression_metrics(y_true, y_pred), "loss": loss}
