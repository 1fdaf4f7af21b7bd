"""The trial contract: what a trial program reads (a trial spec) and what it reports (a result).

This module is shared by the control plane and the trainer image, so it must never import torch.
Both documents are versioned by ``apiVersion``; a reader rejects a version it does not know.
Keep the result small: on a cluster it travels in the container's termination message (<= 4 KiB).
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

TRIAL_SPEC_VERSION: Final = "kubenas.dev/trial-spec/v1"
TRIAL_RESULT_VERSION: Final = "kubenas.dev/trial-result/v1"
TERMINATION_MESSAGE_LIMIT = 4096


class CamelModel(BaseModel):
    """Immutable model read and written with camelCase keys; unknown keys are errors (typos surface)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class LayerType(StrEnum):
    DENSE = "dense"


class Activation(StrEnum):
    RELU = "relu"
    TANH = "tanh"
    SIGMOID = "sigmoid"
    GELU = "gelu"
    ELU = "elu"
    LEAKY_RELU = "leaky_relu"
    SELU = "selu"
    SILU = "silu"


class Optimizer(StrEnum):
    ADAM = "adam"
    ADAMW = "adamw"
    SGD = "sgd"
    RMSPROP = "rmsprop"
    ADAGRAD = "adagrad"
    ADADELTA = "adadelta"


class Direction(StrEnum):
    MAXIMIZE = "maximize"
    MINIMIZE = "minimize"


# Metrics a trial reports on its validation split, with the direction that makes them better.
OBJECTIVE_METRICS: dict[str, Direction] = {
    "accuracy": Direction.MAXIMIZE,
    "f1": Direction.MAXIMIZE,
    "loss": Direction.MINIMIZE,
    "trainingSeconds": Direction.MINIMIZE,
}


class Layer(CamelModel):
    """One hidden layer of a candidate network."""

    type: LayerType = Field(description="Layer kind.")
    units: int = Field(ge=1, le=65536, description="Number of neurons (output features).")
    activation: Activation = Field(description="Activation function after the layer.")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="Dropout probability after the layer.")


class Architecture(CamelModel):
    layers: list[Layer] = Field(min_length=1, max_length=64, description="Hidden layers, input to output.")


class Hyperparameters(CamelModel):
    learning_rate: float = Field(gt=0.0, le=10.0, description="Optimizer learning rate.")
    optimizer: Optimizer = Field(description="Optimizer.")
    batch_size: int = Field(ge=1, le=1 << 20, description="Mini-batch size.")


class Candidate(CamelModel):
    """One point of the search space: what a trial trains."""

    architecture: Architecture
    hyperparameters: Hyperparameters

    def key(self) -> str:
        """Canonical hash: equal candidates (whatever their key order) share it."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class Training(CamelModel):
    """How every trial of an experiment trains."""

    dataset: Literal["digits"] = Field(default="digits", description="Data set to train and validate on.")
    epochs: int = Field(default=10, ge=1, le=10000, description="Training epochs per trial.")
    validation_fraction: float = Field(
        default=0.2, gt=0.0, lt=1.0, description="Fraction of the data held out for validation."
    )


class TrialSpec(CamelModel):
    """Input of one trial."""

    api_version: Literal["kubenas.dev/trial-spec/v1"] = TRIAL_SPEC_VERSION
    name: str = Field(min_length=1)
    candidate: Candidate
    training: Training
    seed: int = Field(ge=0, description="Seed for weights, data split and shuffling.")


class TrialResult(CamelModel):
    """Output of one trial: final validation metrics, or why it failed."""

    api_version: Literal["kubenas.dev/trial-result/v1"] = TRIAL_RESULT_VERSION
    name: str
    phase: Literal["Succeeded", "Failed"]
    metrics: dict[str, float] = Field(default_factory=dict)
    epochs: int = 0
    message: str = ""

    def to_termination_message(self) -> str:
        """JSON that fits the Kubernetes termination-message limit (the message is cut first)."""
        text = json.dumps(self.to_dict(), separators=(",", ":"))
        if len(text.encode()) <= TERMINATION_MESSAGE_LIMIT:
            return text
        overflow = len(text.encode()) - TERMINATION_MESSAGE_LIMIT + 16
        shorter = self.model_copy(update={"message": self.message[: max(0, len(self.message) - overflow)]})
        return json.dumps(shorter.to_dict(), separators=(",", ":"))
