"""Optimizers and the learning-rate schedule (a pure function of the step, as in nanoGPT)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from kubenas_trainer.spec import ClipMode, Hyperparameters, Optimizer, Schedule


def make_optimizer(params: Iterable[nn.Parameter], hp: Hyperparameters) -> torch.optim.Optimizer:
    lr, wd = hp.learning_rate, hp.weight_decay or 0.0
    params = list(params)
    factories: dict[Optimizer, Callable[[], torch.optim.Optimizer]] = {
        Optimizer.ADAM: lambda: torch.optim.Adam(params, lr=lr, weight_decay=wd),
        Optimizer.ADAMW: lambda: torch.optim.AdamW(params, lr=lr, weight_decay=wd),
        Optimizer.SGD: lambda: torch.optim.SGD(
            params, lr=lr, momentum=0.9 if hp.momentum is None else hp.momentum, weight_decay=wd
        ),
        Optimizer.RMSPROP: lambda: torch.optim.RMSprop(
            params, lr=lr, momentum=hp.momentum or 0.0, weight_decay=wd
        ),
        Optimizer.ADAGRAD: lambda: torch.optim.Adagrad(params, lr=lr, weight_decay=wd),
        Optimizer.ADADELTA: lambda: torch.optim.Adadelta(params, lr=lr, weight_decay=wd),
    }
    return factories[hp.optimizer]()


def learning_rate(hp: Hyperparameters, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """The learning rate for optimizer step `step` (0-based) of `total_steps`."""
    warmup = (hp.warmup_epochs or 0) * steps_per_epoch
    if step < warmup:
        return hp.learning_rate * (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    schedule = hp.schedule or Schedule.CONSTANT
    if schedule is Schedule.COSINE:
        return hp.learning_rate * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    if schedule is Schedule.STEP:
        return hp.learning_rate * (0.1 if progress >= 0.5 else 1.0) * (0.1 if progress >= 0.75 else 1.0)
    return hp.learning_rate


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def clip_gradients(model: nn.Module, hp: Hyperparameters) -> None:
    if hp.gradient_clip is None:
        return
    if hp.gradient_clip_mode is ClipMode.VALUE:
        nn.utils.clip_grad_value_(model.parameters(), hp.gradient_clip)
    else:
        nn.utils.clip_grad_norm_(model.parameters(), hp.gradient_clip)
