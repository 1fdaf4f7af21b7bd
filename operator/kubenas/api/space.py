"""The search space of a NASExperiment: which candidates the strategy may propose."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Generic, Self, TypeVar, cast

import annotated_types
from kubenas_trainer.spec import (
    Activation,
    CamelModel,
    ClipMode,
    Hyperparameters,
    Layer,
    LayerType,
    Normalization,
    Optimizer,
    Pooling,
    Schedule,
)
from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

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
# The JSON Schema key under which a domain field carries its Range; `kubenas crd` turns it into bounds
# of the domain's values, min and max, so that the API server refuses what the models refuse.
DOMAIN_BOUNDS = "x-kubenas-domain-bounds"


def _num(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


@dataclass(frozen=True)
class Range:
    """The values a domain field may hold, [low, high] or with an open end: what a candidate's field
    accepts, so that a space cannot propose a candidate the trainer's contract refuses."""

    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    label: str = ""  # what the message calls the values, e.g. "layer count"

    @classmethod
    def of(cls, model: type[BaseModel], field: str) -> Range:
        """The bounds a model's field declares (ge/gt/le/lt)."""
        out = cls(-math.inf)
        for rule in model.model_fields[field].metadata:
            if isinstance(rule, annotated_types.Ge):
                out = replace(out, low=cast(float, rule.ge))
            elif isinstance(rule, annotated_types.Gt):
                out = replace(out, low=cast(float, rule.gt), low_open=True)
            elif isinstance(rule, annotated_types.Le):
                out = replace(out, high=cast(float, rule.le))
            elif isinstance(rule, annotated_types.Lt):
                out = replace(out, high=cast(float, rule.lt), high_open=True)
        return out

    def __str__(self) -> str:
        opening, closing = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"{opening}{_num(self.low)}, {_num(self.high)}{closing}"

    def schema(self) -> dict[str, JsonValue]:
        """The bounds in JSON Schema, under DOMAIN_BOUNDS (for a Field's json_schema_extra)."""
        bounds: dict[str, JsonValue] = {("exclusiveMinimum" if self.low_open else "minimum"): self.low}
        if self.high != math.inf:
            bounds["exclusiveMaximum" if self.high_open else "maximum"] = self.high
        return {DOMAIN_BOUNDS: bounds}

    def check(self, name: str, domain: _Domain[Any] | None) -> None:
        if domain is None:
            return
        lo, hi = domain.bounds()
        below = lo <= self.low if self.low_open else lo < self.low
        above = hi >= self.high if self.high_open else hi > self.high
        if below or above:
            what = f"{self.label} " if self.label else ""
            raise ValueError(f"{name}: {what}must lie in {self} (got {_num(lo)}..{_num(hi)})")


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


# What each domain may hold: what a candidate's field accepts (Layer, Hyperparameters), so that every
# candidate a space can propose is one the trainer's contract accepts.
LAYER_COUNT = Range(1, 64, label="layer count")  # Architecture.layers: 1 to 64 layers
UNITS = Range.of(Layer, "units")
KERNEL_SIZES = Range.of(Layer, "kernel_size")
DROPOUT = Range.of(Layer, "dropout")
LEARNING_RATE = Range.of(Hyperparameters, "learning_rate")
BATCH_SIZE = Range.of(Hyperparameters, "batch_size")
WEIGHT_DECAY = Range.of(Hyperparameters, "weight_decay")
MOMENTUM = Range.of(Hyperparameters, "momentum")
WARMUP_EPOCHS = Range.of(Hyperparameters, "warmup_epochs")
GRADIENT_CLIP = Range(0.0)  # 0 is off; a candidate's gradientClip is then unset
LABEL_SMOOTHING = Range.of(Hyperparameters, "label_smoothing")
EPOCHS = Range.of(Hyperparameters, "epochs")


class LayersSpace(CamelModel):
    """Hidden layers: how many, of which kinds, how wide, with which activations.

    The defaults of the fields after dropout keep every layer as before (no normalisation, no residual,
    kernel 3, no pooling, one direction); a field with a single choice draws no random number, so a
    manifest that leaves them out proposes the same candidates as before they existed.
    """

    count: IntDomain = Field(
        default=IntDomain(min=1, max=3),
        description="Number of hidden layers (1-64).",
        json_schema_extra=LAYER_COUNT.schema(),
    )
    types: list[LayerType] = Field(default=[LayerType.DENSE], min_length=1, description="Layer kinds.")
    units: IntDomain = Field(
        default=IntDomain(values=[32, 64, 128, 256]),
        description=f"Neurons per layer {UNITS}.",
        json_schema_extra=UNITS.schema(),
    )
    activations: list[Activation] = Field(
        default=[Activation.RELU], min_length=1, description="Activation functions to choose from."
    )
    dropout: FloatDomain = Field(
        default=FloatDomain(values=[0.0]),
        description=f"Dropout after each layer {DROPOUT}.",
        json_schema_extra=DROPOUT.schema(),
    )
    kernel_sizes: IntDomain = Field(
        default=IntDomain(values=[3]),
        description="conv1d/conv2d kernel sizes (1-31).",
        json_schema_extra=KERNEL_SIZES.schema(),
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
        KERNEL_SIZES.check("kernelSizes", self.kernel_sizes)
        LAYER_COUNT.check("count", self.count)
        UNITS.check("units", self.units)
        DROPOUT.check("dropout", self.dropout)
        return self


class HyperparameterSpace(CamelModel):
    """Optimisation hyperparameters searched alongside the architecture."""

    learning_rate: FloatDomain = Field(
        default=FloatDomain(min=1e-4, max=1e-1, log=True),
        description=f"Learning rate {LEARNING_RATE}.",
        json_schema_extra=LEARNING_RATE.schema(),
    )
    optimizers: list[Optimizer] = Field(default=[Optimizer.ADAM], min_length=1, description="Optimizers.")
    batch_size: IntDomain = Field(
        default=IntDomain(values=[32, 64, 128]),
        description=f"Mini-batch size {BATCH_SIZE}.",
        json_schema_extra=BATCH_SIZE.schema(),
    )
    weight_decay: FloatDomain = Field(
        default=FloatDomain(values=[0.0]),
        description=f"Weight decay {WEIGHT_DECAY}.",
        json_schema_extra=WEIGHT_DECAY.schema(),
    )
    momentum: FloatDomain | None = Field(
        default=None,
        description=f"sgd/rmsprop momentum {MOMENTUM} (default: 0.9 for sgd, 0 for rmsprop).",
        json_schema_extra=MOMENTUM.schema(),
    )
    schedules: list[Schedule] = Field(
        default=[Schedule.CONSTANT], min_length=1, description="Learning-rate schedules."
    )
    warmup_epochs: IntDomain = Field(
        default=IntDomain(values=[0]),
        description=f"Warm-up epochs {WARMUP_EPOCHS}.",
        json_schema_extra=WARMUP_EPOCHS.schema(),
    )
    gradient_clip: FloatDomain = Field(
        default=FloatDomain(values=[0.0]),
        description="Gradient clipping threshold; 0 means no clipping.",
        json_schema_extra=GRADIENT_CLIP.schema(),
    )
    gradient_clip_modes: list[ClipMode] = Field(
        default=[ClipMode.NORM], min_length=1, description="Clip by norm or by value."
    )
    label_smoothing: FloatDomain = Field(
        default=FloatDomain(values=[0.0]),
        description=f"Label smoothing {LABEL_SMOOTHING} (classification).",
        json_schema_extra=LABEL_SMOOTHING.schema(),
    )
    epochs: IntDomain | None = Field(
        default=None,
        description=f"Training epochs {EPOCHS} (default: training.epochs for every trial).",
        json_schema_extra=EPOCHS.schema(),
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        LEARNING_RATE.check("learningRate", self.learning_rate)
        BATCH_SIZE.check("batchSize", self.batch_size)
        WEIGHT_DECAY.check("weightDecay", self.weight_decay)
        MOMENTUM.check("momentum", self.momentum)
        WARMUP_EPOCHS.check("warmupEpochs", self.warmup_epochs)
        GRADIENT_CLIP.check("gradientClip", self.gradient_clip)
        LABEL_SMOOTHING.check("labelSmoothing", self.label_smoothing)
        EPOCHS.check("epochs", self.epochs)
        return self


class SearchSpace(CamelModel):
    layers: LayersSpace = Field(default=LayersSpace(), description="Architecture choices.")
    hyperparameters: HyperparameterSpace = Field(
        default=HyperparameterSpace(), description="Training hyperparameter choices."
    )
