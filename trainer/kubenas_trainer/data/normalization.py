"""Input standardisation, (x - mean) / std, with statistics of the training split only.

Statistics are shaped to broadcast against one sample, so `(x - mean) / std` is the transform for a
sample and for a batch alike (and inside the exported model):

    perFeature   each input position          mean, std shaped like a sample
    perChannel   an image (C, H, W) per C      (C, 1, 1); a sequence (L, C) per C: (1, C)
    global       one mean, one std             ones-shaped, e.g. (1, 1, 1)
    none         mean 0, std 1                 ones-shaped

auto is perChannel for images and sequences and perFeature for features (F,), where perChannel also
falls back to perFeature. perChannel keeps a pixel that is blank in every training image bounded when
a validation image inks it; perFeature scales such a pixel by 1 (below), but a rare feature with a tiny
nonzero training std can still turn an unusual value into a large input.

A (near-)constant statistic is scaled by 1, as scikit-learn's StandardScaler does (its
`_is_constant_feature`, then `_handle_zeros_in_scale`): with float64 accumulators, a statistic over n
values is constant when var <= n * eps * var + (n * mean * eps) ** 2, eps = float64's machine epsilon
(about 2.2e-16), the rounding bound of the two-pass variance algorithm.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kubenas_trainer.spec import InputNormalization

CHUNK = 4096  # samples per pass: float64 statistics without a float64 copy of the whole split
EPS = float(np.finfo(np.float64).eps)


def resolve(mode: InputNormalization, sample_shape: tuple[int, ...]) -> InputNormalization:
    """The mode actually applied: auto and perChannel become perFeature where there are no channels."""
    has_channels = len(sample_shape) in (2, 3)  # a sequence (L, C) or an image (C, H, W)
    if mode is InputNormalization.AUTO:
        return InputNormalization.PER_CHANNEL if has_channels else InputNormalization.PER_FEATURE
    if mode is InputNormalization.PER_CHANNEL and not has_channels:
        return InputNormalization.PER_FEATURE
    return mode


def reduced_axes(mode: InputNormalization, ndim: int) -> tuple[int, ...]:
    """The axes of a batch (samples first, ndim dimensions in all) that one statistic averages over."""
    if mode is InputNormalization.PER_FEATURE:
        return (0,)
    if mode is InputNormalization.PER_CHANNEL:
        channel = 1 if ndim == 4 else ndim - 1  # images (N, C, H, W), sequences (N, L, C)
        return tuple(axis for axis in range(ndim) if axis != channel)
    return tuple(range(ndim))


def constant(var: np.ndarray, mean: np.ndarray, count: int) -> np.ndarray:
    """Where a statistic cannot be told from a constant's (StandardScaler's `_is_constant_feature`)."""
    mask: np.ndarray = var <= count * EPS * var + (count * mean * EPS) ** 2
    return mask


def statistics(x_train: np.ndarray, mode: InputNormalization) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) as float32 shaped to broadcast against one sample; mode must be resolved."""
    if mode is InputNormalization.AUTO:
        raise ValueError("resolve(mode, sample shape) first: auto names no statistics")
    ones = (1,) * (x_train.ndim - 1)
    if mode is InputNormalization.NONE:
        return np.zeros(ones, np.float32), np.ones(ones, np.float32)
    axes = reduced_axes(mode, x_train.ndim)
    count = int(np.prod([x_train.shape[a] for a in axes]))
    mean = _sum(x_train, axes, lambda chunk: chunk) / count
    var = _sum(x_train, axes, lambda chunk: (chunk - mean) ** 2) / count
    std = np.where(constant(var, mean, count), 1.0, np.sqrt(var))
    return mean[0].astype(np.float32), std[0].astype(np.float32)


def _sum(x: np.ndarray, axes: tuple[int, ...], term: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The float64 sum of term(x) over axes (kept as size 1), a chunk of CHUNK samples at a time."""
    total = np.zeros([1 if axis in axes else n for axis, n in enumerate(x.shape)], np.float64)
    for start in range(0, len(x), CHUNK):
        total += term(x[start : start + CHUNK].astype(np.float64)).sum(axis=axes, keepdims=True)
    return total


def scalar_std(values: np.ndarray) -> float:
    """A regression target's std, 1 when the target is constant (the same rule)."""
    mean, var = float(values.mean(dtype=np.float64)), float(values.var(dtype=np.float64))
    return 1.0 if bool(constant(np.asarray(var), np.asarray(mean), len(values))) else var**0.5
