"""Quality metrics on numpy arrays (cheap and testable): classification and regression."""

from __future__ import annotations

import numpy as np


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true == y_pred))


def _per_class(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> list[tuple[int, int, int]]:
    """(tp, fp, fn) of each class present in y_true or y_pred."""
    counts = []
    for c in range(num_classes):
        tp = int(np.sum((y_pred == c) & (y_true == c)))
        fp = int(np.sum((y_pred == c) & (y_true != c)))
        fn = int(np.sum((y_pred != c) & (y_true == c)))
        if tp + fp + fn:
            counts.append((tp, fp, fn))
    return counts


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes present in y_true or y_pred."""
    counts = _per_class(y_true, y_pred, num_classes)
    return float(np.mean([2 * tp / (2 * tp + fp + fn) for tp, fp, fn in counts])) if counts else 0.0


def macro_precision(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    counts = _per_class(y_true, y_pred, num_classes)
    return float(np.mean([tp / (tp + fp) if tp + fp else 0.0 for tp, fp, _ in counts])) if counts else 0.0


def macro_recall(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    counts = _per_class(y_true, y_pred, num_classes)
    return float(np.mean([tp / (tp + fn) if tp + fn else 0.0 for tp, _, fn in counts])) if counts else 0.0


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict[str, float]:
    return {
        "accuracy": accuracy(y_true, y_pred),
        "f1": macro_f1(y_true, y_pred, num_classes),
        "precision": macro_precision(y_true, y_pred, num_classes),
        "recall": macro_recall(y_true, y_pred, num_classes),
    }


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MSE, MAE and R2 (1 - SSE/SST; 0 for predicting the mean, negative when worse)."""
    error = y_pred - y_true
    total = float(np.sum((y_true - y_true.mean()) ** 2))
    r2 = 1.0 - float(np.sum(error**2)) / total if total > 0 else 0.0
    return {"mse": float(np.mean(error**2)), "mae": float(np.mean(np.abs(error))), "r2": r2}
