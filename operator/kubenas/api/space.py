"""The search space of a NASExperiment: which candidates the strategy may propose."""

from __future__ import annotations

import math
from typing import Any, Generic, Self, TypeVar

from kubenas_trainer.spec import (
    Activation,
    CamelModel,
    ClipMode,
    LayerType,
    Normalization,
    Optimizer,
    Pooling,
    Schedule,
)
from pydantic import ConfigDict, Field, JsonValue, model_validator

_ONE_OF: dict[str, JsonValue] = {
    "rule": "has(self.values) ? !has(self.min) && !has(self.max) : has(self.min) && has(self.max)",
    "message": "set either values, or both min and max",
}
_ORDERED: dict[str, JsonValue] = {
    "rule": "!has(self.min) || !has(self.max) || self.min <= self.max",
    "message": "min must be <= max",
}
_LOG_POSITIVE: dict[str, JsonValue] = {
    "rule": "!has(self.log) || !self.log || !has(self.min) || self.min > 0",
    "message": "log scale needs min > 0",
}


N = TypeVar("N", int, float)
_RULES: list[JsonValue] = [_ONE_OF, _ORDERED, _LOG_POSITIVE]


class _Domain(CamelModel, Generic[N]):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _RULES})

    values: list[N] | None = Field(default=None, min_length=1, description="Explicit choices.")
    min: N | None = Field(default=None, description="Smallest value (inclusive).")
    max: N | None = Field(default=None, description="Largest value (inclusive).")
    log: bool = Field(default=False, description="Sample the range on a log scale.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        values, lo, hi = self.values, self.min, self.max
        list_only = values is not None and lo is None and hi is None
        range_only = values is None and lo is not None and hi is not None
        if not (list_only or range_only):
            raise ValueError(_ONE_OF["message"])
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min must be <= max (min={lo}, max={hi})")
        if self.log and lo is not None and lo <= 0:
            raise ValueError(f"log scale needs min > 0 (min={lo})")
        return self

    def bounds(self) -> tuple[N, N]:
        """Smallest and largest value the domain can produce."""
        if self.values is not None:
            return min(self.values), max(self.values)
        assert self.min is not None and self.max is not None
        return self.min, self.max


class IntDomain(_Domain[int]):
    """Integers: an explicit list, or a range [min, max] with an optional step or log scale."""

    step: int = Field(default=1, ge=1, description="Spacing of the range (linear scale only).")

    def choices(self) -> list[int] | None:
        """All values when the domain is a finite list or a linear range, else None."""
        if self.values is not None:
            return sorted(set(self.values))
        assert self.min is not None and self.max is not None
        return None if self.log else list(range(self.min, self.max + 1, self.step))


class FloatDomain(_Domain[float]):
    """Real numbers: an explicit list, or a range [min, max], optionally on a log scale."""


class LayersSpace(CamelModel):
    """Hidden layers: how many, of which kinds, how wide, with which activations.

    The defaults of the fields after dropout keep every layer as before (no normalisation, no residual,
    kernel 3, no pooling, one direction); a field with a single choice draws no random number, so a
    manifest that leaves them out proposes the same candidates as before they existed.
    """

    count: IntDomain = Field(default=IntDomain(min=1, max=3), description="Number of hidden layers (1-64).")
    types: list[LayerType] = Field(default=[LayerType.DENSE], min_length=1, description="Layer kinds.")
    units: IntDomain = Field(default=IntDomain(values=[32, 64, 128, 256]), description="Neurons per layer.")
    activations: list[Activation] = Field(
        default=[Activation.RELU], min_length=1, description="Activation functions to choose from."
    )
    dropout: FloatDomain = Field(default=FloatDomain(values=[0.0]), description="Dropout after each layer.")
    kernel_sizes: IntDomain = Field(
        default=IntDomain(values=[3]), description="conv1d/conv2d kernel sizes (1-31)."
    )
    pooling: list[Pooling] = Field(
        default=[Pooling.NONE], min_length=1, description="conv1d/conv2d pooling after the layer."
    )
    bidirectional: list[bool] = Field(default=[False], min_length=1, description="lstm/gru directions.")
    normalization: list[Normalization] = Field(
        default=[Normalization.NONE], min_length=1, description="Normalisation in each layer."
    )
    residual: list[bool] = Field(default=[False], min_length=1, description="Residual connection per layer.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        k_lo, k_hi = self.kernel_sizes.bounds()
        if k_lo < 1 or k_hi > 31:
            raise ValueError(f"kernelSizes: must lie in [1, 31] (got {k_lo}..{k_hi})")
        lo, hi = self.count.bounds()
        if lo < 1 or hi > 64:
            raise ValueError(f"count: layer count must lie in [1, 64] (got {lo:g}..{hi:g})")
        if self.units.bounds()[0] < 1:
            raise ValueError("units: must be >= 1")
        low, high = self.dropout.bounds()
        if low < 0.0 or high >= 1.0:
            raise ValueError(f"dropout: must lie in [0, 1) (got {low:g}..{high:g})")
        return self


class HyperparameterSpace(CamelModel):
    """Optimisation hyperparameters searched alongside the architecture."""

    learning_rate: FloatDomain = Field(
        default=FloatDomain(min=1e-4, max=1e-1, log=True), description="Learning rate."
    )
    optimizers: list[Optimizer] = Field(default=[Optimizer.ADAM], min_length=1, description="Optimizers.")
    batch_size: IntDomain = Field(default=IntDomain(values=[32, 64, 128]), description="Mini-batch size.")
    weight_decay: FloatDomain = Field(default=FloatDomain(values=[0.0]), description="Weight decay (0-1).")
    momentum: FloatDomain | None = Field(
        default=None, description="sgd/rmsprop momentum in [0, 1) (default: 0.9 for sgd, 0 for rmsprop)."
    )
    schedules: list[Schedule] = Field(
        default=[Schedule.CONSTANT], min_length=1, description="Learning-rate schedules."
    )
    warmup_epochs: IntDomain = Field(default=IntDomain(values=[0]), description="Warm-up epochs.")
    gradient_clip: FloatDomain = Field(
        default=FloatDomain(values=[0.0]), description="Gradient clipping threshold; 0 means no clipping."
    )
    gradient_clip_modes: list[ClipMode] = Field(
        default=[ClipMode.NORM], min_length=1, description="Clip by norm or by value."
    )
    label_smoothing: FloatDomain = Field(
        default=FloatDomain(values=[0.0]), description="Label smoothing in [0, 1) (classification)."
    )
    epochs: IntDomain | None = Field(
        default=None, description="Training epochs (default: training.epochs for every trial)."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.learning_rate.bounds()[0] <= 0:
            raise ValueError("learningRate: must be > 0")
        if self.batch_size.bounds()[0] < 1:
            raise ValueError("batchSize: must be >= 1")
        ranges: list[tuple[str, _Domain[Any] | None, float, float, bool]] = [
            ("weightDecay", self.weight_decay, 0.0, 1.0, True),
            ("momentum", self.momentum, 0.0, 1.0, False),
            ("warmupEpochs", self.warmup_epochs, 0, 1000, True),
            ("gradientClip", self.gradient_clip, 0.0, math.inf, True),
            ("labelSmoothing", self.label_smoothing, 0.0, 1.0, False),
            ("epochs", self.epochs, 1, 10000, True),
        ]
        for name, domain, low, high, closed in ranges:
            if domain is None:
                continue
            lo, hi = domain.bounds()
            if lo < low or hi > high or (not closed and hi >= high):
                bracket = "]" if closed else ")"
                raise ValueError(f"{name}: must lie in [{low:g}, {high:g}{bracket} (got {lo:g}..{hi:g})")
        return self


class SearchSpace(CamelModel):
    layers: LayersSpace = Field(default=LayersSpace(), description="Architecture choices.")
    hyperparameters: HyperparameterSpace = Field(
        default=HyperparameterSpace(), description="Training hyperparameter choices."
    )
