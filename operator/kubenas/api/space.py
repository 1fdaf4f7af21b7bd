"""The search space of a NASExperiment: which candidates the strategy may propose."""

from __future__ import annotations

from typing import Generic, Self, TypeVar

from kubenas_trainer.spec import Activation, CamelModel, LayerType, Optimizer
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
    """Hidden layers: how many, of which kinds, how wide, with which activations."""

    count: IntDomain = Field(default=IntDomain(min=1, max=3), description="Number of hidden layers (1-64).")
    types: list[LayerType] = Field(default=[LayerType.DENSE], min_length=1, description="Layer kinds.")
    units: IntDomain = Field(default=IntDomain(values=[32, 64, 128, 256]), description="Neurons per layer.")
    activations: list[Activation] = Field(
        default=[Activation.RELU], min_length=1, description="Activation functions to choose from."
    )
    dropout: FloatDomain = Field(default=FloatDomain(values=[0.0]), description="Dropout after each layer.")

    @model_validator(mode="after")
    def _check(self) -> Self:
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

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.learning_rate.bounds()[0] <= 0:
            raise ValueError("learningRate: must be > 0")
        if self.batch_size.bounds()[0] < 1:
            raise ValueError("batchSize: must be >= 1")
        return self


class SearchSpace(CamelModel):
    layers: LayersSpace = Field(default=LayersSpace(), description="Architecture choices.")
    hyperparameters: HyperparameterSpace = Field(
        default=HyperparameterSpace(), description="Training hyperparameter choices."
    )
