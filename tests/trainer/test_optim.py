"""Optimizers, the learning-rate schedule, gradient clipping and the quality metrics."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from kubenas_trainer.metrics import classification_metrics, regression_metrics
from kubenas_trainer.optim import clip_gradients, learning_rate, make_optimizer
from kubenas_trainer.spec import Hyperparameters, Optimizer
from sklearn import metrics as sk


def hp(**fields: object) -> Hyperparameters:
    return Hyperparameters.model_validate({"learningRate": 0.1, "optimizer": "sgd", "batchSize": 8, **fields})


@pytest.mark.parametrize("name", list(Optimizer))
def test_every_optimizer_reduces_a_quadratic(name: Optimizer) -> None:
    weight = torch.nn.Parameter(torch.tensor([3.0, -2.0]))
    lr = 1.0 if name is Optimizer.ADADELTA else 0.05
    optimizer = make_optimizer([weight], hp(optimizer=name, learningRate=lr, weightDecay=0.01))
    start = float((weight**2).sum().detach())
    for _ in range(50):
        optimizer.zero_grad()
        (weight**2).sum().backward()
        optimizer.step()
    assert float((weight**2).sum().detach()) < start
    assert optimizer.param_groups[0]["weight_decay"] == 0.01


def test_sgd_momentum_defaults_to_09_and_can_be_set() -> None:
    weight = torch.nn.Parameter(torch.zeros(1))
    assert make_optimizer([weight], hp()).param_groups[0]["momentum"] == 0.9
    assert make_optimizer([weight], hp(momentum=0.5)).param_groups[0]["momentum"] == 0.5


def test_schedules() -> None:
    total, per_epoch = 100, 10
    constant = [learning_rate(hp(), s, total, per_epoch) for s in range(total)]
    assert constant == [0.1] * total
    warm = [learning_rate(hp(warmupEpochs=2), s, total, per_epoch) for s in range(total)]
    assert warm[0] == pytest.approx(0.1 / 20) and warm[19] == pytest.approx(0.1) and warm[50] == 0.1
    assert all(a < b for a, b in itertools.pairwise(warm[:20]))
    cosine = [learning_rate(hp(schedule="cosine"), s, total, per_epoch) for s in range(total)]
    assert cosine[0] == pytest.approx(0.1) and cosine[50] == pytest.approx(0.05) and cosine[-1] < 1e-3
    assert all(a >= b for a, b in itertools.pairwise(cosine))
    step = [learning_rate(hp(schedule="step"), s, total, per_epoch) for s in range(total)]
    assert step[49] == 0.1 and step[50] == pytest.approx(0.01) and step[75] == pytest.approx(0.001)
    both = [learning_rate(hp(schedule="cosine", warmupEpochs=1), s, total, per_epoch) for s in range(total)]
    assert both[9] == pytest.approx(0.1) and both[10] == pytest.approx(0.1) and both[-1] < 1e-3


def test_gradient_clipping_by_norm_and_by_value() -> None:
    model = torch.nn.Linear(4, 1, bias=False)

    def grads(**fields: object) -> torch.Tensor:
        model.zero_grad()
        (model(torch.full((1, 4), 100.0)).sum() * 10).backward()
        clip_gradients(model, hp(**fields))
        assert model.weight.grad is not None
        return model.weight.grad.clone()

    assert grads().norm() > 100
    assert grads(gradientClip=1.0).norm() == pytest.approx(1.0, rel=1e-4)
    assert grads(gradientClip=0.5, gradientClipMode="value").abs().max() == pytest.approx(0.5)


def test_classification_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    ours = classification_metrics(y_true, y_pred, 4)
    assert ours["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert ours["f1"] == pytest.approx(sk.f1_score(y_true, y_pred, average="macro"))
    assert ours["precision"] == pytest.approx(sk.precision_score(y_true, y_pred, average="macro"))
    assert ours["recall"] == pytest.approx(sk.recall_score(y_true, y_pred, average="macro"))


def test_regression_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    y_true = rng.normal(size=100)
    y_pred = y_true + rng.normal(scale=0.5, size=100)
    ours = regression_metrics(y_true, y_pred)
    assert ours["mse"] == pytest.approx(sk.mean_squared_error(y_true, y_pred))
    assert ours["mae"] == pytest.approx(sk.mean_absolute_error(y_true, y_pred))
    assert ours["r2"] == pytest.approx(sk.r2_score(y_true, y_pred))
    assert regression_metrics(y_true, np.full(100, y_true.mean()))["r2"] == pytest.approx(0.0)
    assert not math.isnan(regression_metrics(np.ones(3), np.ones(3))["r2"])
