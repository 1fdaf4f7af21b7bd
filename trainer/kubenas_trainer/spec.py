"""The trial contract: what a trial program reads (a trial spec) and what it reports (a result).

This module is shared by the control plane and the trainer image, so it must never import torch.
Both documents are versioned by ``apiVersion``; a reader rejects a version it does not know.
Keep the result small: on a cluster it travels in the container's termination message (<= 4 KiB).
"""

from __future__ import annotations

import hashlib
import json
import re
from enum import StrEnum
from typing import Any, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

TRIAL_SPEC_VERSION: Final = "kubenas.dev/trial-spec/v1"
TRIAL_RESULT_VERSION: Final = "kubenas.dev/trial-result/v1"
TERMINATION_MESSAGE_LIMIT = 4096
# The trainer's checkpoint in its output directory: what --resume continues and startFrom names.
CHECKPOINT_FILE: Final = "checkpoint.pt"
# The result and the per-epoch metrics in the run directory (and under ArtifactStore.uri).
RESULT_FILE: Final = "result.json"
METRICS_FILE: Final = "metrics.jsonl"
# Prometheus label names; a grouping label may not be one the trainer sets itself.
LABEL_NAME: Final = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
RESERVED_LABELS: Final = frozenset({"job", "metric", "epoch"})


class UnusableSpec(ValueError):
    """A well-formed trial spec that cannot run on its data set (e.g. conv2d on tabular data)."""


class DataUnavailable(UnusableSpec):
    """training.dataset cannot be loaded at all (no such file, object or bucket, no access, a download
    that failed, a file that cannot be read); the message names training.dataset and the cause."""


class FailureReason(StrEnum):
    """Why a trial failed (TrialResult.reason): whether another candidate could avoid it.

    InvalidCandidate: the candidate cannot be built for its data (kubenas_trainer.shapes.ArchitectureError);
    another candidate can avoid it. InvalidSpec: the spec cannot run whatever the candidate (an objective
    metric not reported for the task, a task or split mismatch, a startFrom checkpoint of another shape, an
    unusable storage endpoint, an unreadable trial spec). DataUnavailable: training.dataset cannot be
    loaded. Interrupted: stopped by SIGTERM after writing a checkpoint. TrainingFailed: anything else
    (divergence, out of memory, storage failing past its deadline...).
    """

    INVALID_CANDIDATE = "InvalidCandidate"
    INVALID_SPEC = "InvalidSpec"
    DATA_UNAVAILABLE = "DataUnavailable"
    TRAINING_FAILED = "TrainingFailed"
    INTERRUPTED = "Interrupted"


class CamelModel(BaseModel):
    """Immutable model read and written with camelCase keys; unknown keys are errors (typos surface)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class LayerType(StrEnum):
    DENSE = "dense"
    CONV1D = "conv1d"
    CONV2D = "conv2d"
    LSTM = "lstm"
    GRU = "gru"


CONV_LAYERS: Final = frozenset({LayerType.CONV1D, LayerType.CONV2D})
RECURRENT_LAYERS: Final = frozenset({LayerType.LSTM, LayerType.GRU})


class Pooling(StrEnum):
    NONE = "none"
    MAX = "max"
    AVG = "avg"


class Normalization(StrEnum):
    NONE = "none"
    BATCH = "batch"
    LAYER = "layer"


class InputNormalization(StrEnum):
    """How the trainer standardises inputs, from statistics of the training split only."""

    AUTO = "auto"
    PER_FEATURE = "perFeature"
    PER_CHANNEL = "perChannel"
    GLOBAL = "global"
    NONE = "none"


class Schedule(StrEnum):
    CONSTANT = "constant"
    COSINE = "cosine"
    STEP = "step"


class ClipMode(StrEnum):
    NORM = "norm"
    VALUE = "value"


class Task(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


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
# Classification reports accuracy, f1 (macro), precision, recall (macro) and loss; regression mse, mae,
# r2 and loss. The same names, measured on the held-out test split, go to TrialResult.test_metrics.
OBJECTIVE_METRICS: dict[str, Direction] = {
    "accuracy": Direction.MAXIMIZE,
    "f1": Direction.MAXIMIZE,
    "precision": Direction.MAXIMIZE,
    "recall": Direction.MAXIMIZE,
    "loss": Direction.MINIMIZE,
    "mse": Direction.MINIMIZE,
    "mae": Direction.MINIMIZE,
    "r2": Direction.MAXIMIZE,
    "trainingSeconds": Direction.MINIMIZE,
}
CLASSIFICATION_METRICS: Final = ("accuracy", "f1", "precision", "recall", "loss")
REGRESSION_METRICS: Final = ("mse", "mae", "r2", "loss")

# Built-in data sets: shipped inside installed packages (no network), or downloaded and cached by name.
BUILTIN_DATASETS: Final = ("digits", "iris", "wine", "breast_cancer", "diabetes", "sunspots", "co2")
DOWNLOADABLE_DATASETS: Final = ("mnist", "fashion_mnist", "cifar10")
REGRESSION_DATASETS: Final = ("diabetes", "sunspots", "co2")
DATA_FILE_SUFFIXES: Final = (".npz", ".csv", ".parquet", "-ubyte", "-ubyte.gz", "/")


def _unset_off_values(data: Any, off: dict[str, tuple[Any, ...]]) -> Any:
    """Drop optional fields given at their "off" value, so that one candidate has one canonical form
    (and one key) whether a field was left out, sampled as off, or decoded by a strategy."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for field, values in off.items():
        for key in {field, to_camel(field)}:
            if key in out and out[key] is not None and any(out[key] == v for v in values):
                del out[key]
    return out


class Layer(CamelModel):
    """One hidden layer of a candidate network.

    Optional fields are None when unset (so candidates written before they existed keep their key).
    """

    type: LayerType = Field(description="Layer kind.")
    units: int = Field(
        ge=1, le=65536, description="Output width: neurons (dense), filters (conv), hidden size (lstm/gru)."
    )
    activation: Activation = Field(description="Activation function after the layer.")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="Dropout probability after the layer.")
    kernel_size: int | None = Field(
        default=None, ge=1, le=31, description="conv1d/conv2d only: kernel size (default 3, 'same' padding)."
    )
    pooling: Pooling | None = Field(
        default=None, description="conv1d/conv2d only: pooling with window 2 after the layer (default none)."
    )
    bidirectional: bool | None = Field(default=None, description="lstm/gru only: read both directions.")
    normalization: Normalization | None = Field(
        default=None, description="Normalisation before the activation (default none)."
    )
    residual: bool | None = Field(
        default=None, description="Add the layer's input to its output (projected when widths differ)."
    )

    @model_validator(mode="before")
    @classmethod
    def _canonical(cls, data: Any) -> Any:
        return _unset_off_values(
            data,
            {
                "pooling": ("none",),
                "normalization": ("none",),
                "residual": (False,),
                "bidirectional": (False,),
            },
        )

    @model_validator(mode="after")
    def _fields_fit_type(self) -> Self:
        if self.type not in CONV_LAYERS and (self.kernel_size is not None or self.pooling is not None):
            raise ValueError(f"kernelSize and pooling apply to conv1d/conv2d layers only, not {self.type}")
        if self.type not in RECURRENT_LAYERS and self.bidirectional is not None:
            raise ValueError(f"bidirectional applies to lstm/gru layers only, not {self.type}")
        return self


class Architecture(CamelModel):
    layers: list[Layer] = Field(min_length=1, max_length=64, description="Hidden layers, input to output.")


class Hyperparameters(CamelModel):
    """How a candidate trains. Optional fields are None when unset (the default noted on each)."""

    learning_rate: float = Field(gt=0.0, le=10.0, description="Optimizer learning rate.")
    optimizer: Optimizer = Field(description="Optimizer.")
    batch_size: int = Field(ge=1, le=1 << 20, description="Mini-batch size.")
    weight_decay: float | None = Field(default=None, ge=0.0, le=1.0, description="Weight decay (default 0).")
    momentum: float | None = Field(
        default=None, ge=0.0, lt=1.0, description="sgd/rmsprop momentum (default 0.9 for sgd, 0 for rmsprop)."
    )
    schedule: Schedule | None = Field(
        default=None,
        description="Learning-rate schedule: constant (default), cosine to 0, or step (x0.1 at 50% and 75%).",
    )
    warmup_epochs: int | None = Field(
        default=None, ge=0, le=1000, description="Epochs of linear learning-rate warm-up (default 0)."
    )
    gradient_clip: float | None = Field(
        default=None, gt=0.0, description="Clip gradients at this norm or value (default: no clipping)."
    )
    gradient_clip_mode: ClipMode | None = Field(
        default=None, description="Whether gradientClip bounds the norm (default) or each value."
    )
    label_smoothing: float | None = Field(
        default=None, ge=0.0, lt=1.0, description="Label smoothing of the classification loss (default 0)."
    )
    epochs: int | None = Field(
        default=None, ge=1, le=10000, description="Training epochs; overrides training.epochs when set."
    )

    @model_validator(mode="before")
    @classmethod
    def _canonical(cls, data: Any) -> Any:
        data = _unset_off_values(
            data,
            {
                "weight_decay": (0,),
                "schedule": ("constant",),
                "warmup_epochs": (0,),
                "gradient_clip": (0,),
                "label_smoothing": (0,),
            },
        )
        clip = isinstance(data, dict) and (data.get("gradientClip") or data.get("gradient_clip"))
        return _unset_off_values(data, {"gradient_clip_mode": ("norm",) if clip else ("norm", "value")})


class Candidate(CamelModel):
    """One point of the search space: what a trial trains."""

    architecture: Architecture = Field(description="The network: its hidden layers.")
    hyperparameters: Hyperparameters = Field(description="How it trains.")

    def key(self) -> str:
        """Canonical hash: equal candidates (whatever their key order) share it."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class Training(CamelModel):
    """How every trial of an experiment trains."""

    dataset: str = Field(
        default="digits",
        min_length=1,
        max_length=2048,
        description=(
            f"Data set: one of {', '.join(BUILTIN_DATASETS + DOWNLOADABLE_DATASETS)}, or a .npz, .csv, "
            ".parquet or IDX file (or a directory of IDX files) as a local path or s3:// URI."
        ),
    )
    epochs: int = Field(default=10, ge=1, le=10000, description="Training epochs per trial.")
    validation_fraction: float = Field(
        default=0.2, gt=0.0, lt=1.0, description="Fraction of the data held out for validation."
    )
    test_fraction: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Fraction held out for the test split (0: none, unless the data set ships a test set).",
    )
    split_seed: int = Field(
        default=0,
        ge=0,
        le=2**31 - 1,
        description="Seed of the train/validation/test split, the same for every trial of an experiment "
        "(so all are ranked on the same validation samples); a trial's own seed only initialises its "
        "weights and shuffles its batches.",
    )
    normalization: InputNormalization = Field(
        default=InputNormalization.AUTO,
        description="Input standardisation, (x - mean) / std with statistics of the training split: "
        "perFeature, each input position on its own; perChannel, each channel of an image (C, H, W) or "
        "sequence (L, C) over samples and positions (features (F,): as perFeature); global, one mean and "
        "std over all values; none, raw inputs; auto (default), perChannel for images and sequences, "
        "perFeature for features. A (near-)constant feature, channel or data set is scaled by 1, as "
        "scikit-learn's StandardScaler does.",
    )
    task: Task | None = Field(default=None, description="The task (default: inferred from the data set).")
    target: str | None = Field(
        default=None, description="csv/parquet: the target column (default 'target', else the last column)."
    )
    sequence_length: int | None = Field(
        default=None,
        ge=2,
        le=100000,
        description="Forecasting data sets: input window length, in time steps (default 20 for sunspots, "
        "52 for co2).",
    )
    early_stopping_patience: int | None = Field(
        default=None,
        ge=1,
        description="Stop after this many epochs without a better objective (default off).",
    )
    mixed_precision: bool = Field(default=False, description="bf16 autocast on a GPU (ignored on a CPU).")
    deterministic: bool = Field(default=False, description="Deterministic algorithms only (slower).")

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, dataset: str) -> str:
        known = BUILTIN_DATASETS + DOWNLOADABLE_DATASETS
        is_file = "/" in dataset or dataset.endswith(DATA_FILE_SUFFIXES)
        if dataset not in known and not is_file:
            raise ValueError(
                f"unknown data set {dataset!r}; must be one of {', '.join(known)}, "
                "or a path or s3:// URI of a .npz, .csv, .parquet or IDX file"
            )
        return dataset

    def known_task(self) -> Task | None:
        """The task when it is known without loading the data: set, or that of a built-in set."""
        if self.task is not None:
            return self.task
        if self.dataset in BUILTIN_DATASETS + DOWNLOADABLE_DATASETS:
            regression = self.dataset in REGRESSION_DATASETS
            return Task.REGRESSION if regression else Task.CLASSIFICATION
        return None

    @model_validator(mode="after")
    def _fractions(self) -> Self:
        if self.validation_fraction + self.test_fraction > 0.9:
            raise ValueError(
                "validationFraction + testFraction must be <= 0.9 "
                f"(validationFraction={self.validation_fraction}, testFraction={self.test_fraction})"
            )
        return self


class ObjectiveRef(CamelModel):
    """The experiment's objective, so the trainer keeps the best epoch and stops early on it."""

    metric: str = Field(description="Validation metric, one of OBJECTIVE_METRICS.")
    direction: Direction = Field(description="maximize or minimize.")


class MetricsReport(CamelModel):
    """Where the trainer pushes its per-epoch metrics (kubenas_trainer.report names them)."""

    pushgateway: str = Field(
        min_length=1,
        max_length=2048,
        description="Base URL of a Prometheus Pushgateway, e.g. http://pushgateway.monitoring:9091.",
    )
    labels: dict[str, str] = Field(
        min_length=1,
        description="The push's grouping key (the operator sends namespace, experiment and trial).",
    )

    @field_validator("labels")
    @classmethod
    def _label_names(cls, labels: dict[str, str]) -> dict[str, str]:
        for name in labels:
            if not LABEL_NAME.fullmatch(name) or name.startswith("__"):
                raise ValueError(
                    f"label {name!r} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, no leading __)"
                )
            if name in RESERVED_LABELS:
                raise ValueError(f"label {name!r} is set by the trainer; use another name")
        return labels


class ArtifactStore(CamelModel):
    """S3-compatible object storage holding the trial's run directory. Credentials come only from the
    environment (boto3's chain: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...), never from the spec."""

    uri: str = Field(
        max_length=1024,
        description="The trial's own prefix, s3://bucket/prefix/<namespace>/<experiment>/<trial>/ "
        "(a trailing / is added).",
    )
    endpoint: str | None = Field(
        default=None,
        description="An S3-compatible endpoint URL (default: boto3's chain, e.g. $AWS_ENDPOINT_URL).",
    )
    region: str | None = Field(default=None, description="The bucket's region (default: boto3's chain).")

    @field_validator("uri")
    @classmethod
    def _s3_prefix(cls, uri: str) -> str:
        bucket = uri.removeprefix("s3://").split("/", 1)[0]
        if not uri.startswith("s3://") or not bucket:
            raise ValueError(f"uri {uri!r} is not an s3://bucket/prefix/ URI")
        return uri if uri.endswith("/") else uri + "/"


class TrialSpec(CamelModel):
    """Input of one trial."""

    api_version: Literal["kubenas.dev/trial-spec/v1"] = TRIAL_SPEC_VERSION
    name: str = Field(min_length=1)
    candidate: Candidate
    training: Training
    seed: int = Field(
        ge=0,
        description="Seed for weights and batch order; the data split comes from training.splitSeed.",
    )
    objective: ObjectiveRef | None = Field(
        default=None, description="Metric that picks the best epoch (default: validation loss)."
    )
    resume_from: str | None = Field(
        default=None,
        description="This trial's own checkpoint to continue from (same candidate): a path or an s3:// URI.",
    )
    start_from: str | None = Field(
        default=None,
        description="Another trial's checkpoint to start from (PBT exploit, MIHA clones), a path or an "
        "s3:// URI: its weights, its epoch count, and its optimizer state when the optimizer is the same. "
        "The candidate may differ in hyperparameters and activations, not in the shape of its weights.",
    )
    stop_at_epoch: int | None = Field(
        default=None,
        ge=1,
        le=10000,
        description="Pause after this many epochs in total (a rung, a segment): report phase Paused and "
        "keep the checkpoint, so a later run continues it. The learning-rate schedule still spans "
        "all epochs.",
    )
    report: MetricsReport | None = Field(
        default=None, description="Push every epoch's metrics to a Prometheus Pushgateway (default off)."
    )
    storage: ArtifactStore | None = Field(
        default=None,
        description="Upload the run directory to object storage as the trial goes (default: local only); "
        "--resume then continues the stored checkpoint when the output directory has none.",
    )


class TrialResult(CamelModel):
    """Output of one trial: validation metrics of the best epoch (plus cost metrics), or why it failed.

    A Paused trial (it reached stopAtEpoch) reports its last epoch's validation metrics instead: that
    is the state its checkpoint holds and a continuation starts from.

    Held-out test metrics stay apart in test_metrics, so no strategy can select on them.
    With storage, `artifacts` names where the run directory went and metrics carry uploadedBytes (its
    stored size, result.json aside).
    """

    api_version: Literal["kubenas.dev/trial-result/v1"] = TRIAL_RESULT_VERSION
    name: str
    phase: Literal["Succeeded", "Failed", "Paused"]
    metrics: dict[str, float] = Field(default_factory=dict)
    test_metrics: dict[str, float] = Field(default_factory=dict)
    epochs: int = 0
    best_epoch: int | None = None
    curve: list[float] = Field(
        default_factory=list,
        description="The validation objective after each epoch (6 significant digits): what multi-fidelity "
        "schedulers rank trials on when no live metrics reach the controller.",
    )
    message: str = ""
    split_fingerprint: str | None = Field(
        default=None,
        description="Fingerprint of the train/validation/test split the trial was trained and validated "
        "on: equal for every trial of an experiment.",
    )
    artifacts: str | None = Field(
        default=None,
        description="The storage URI the run directory was uploaded to (None without storage, or when the "
        "upload failed).",
    )
    reason: str | None = Field(
        default=None,
        description="Why a Failed trial failed, one of FailureReason (a plain string, so that a reader "
        "older than a new reason still reads the result); None unless Failed.",
    )

    def to_termination_message(self) -> str:
        """JSON that fits the Kubernetes termination-message limit: the message is cut first, then the
        curve is dropped whole (a partial curve would misalign epochs; a few hundred epochs fit)."""
        text = json.dumps(self.to_dict(), separators=(",", ":"))
        overflow = len(text.encode()) - TERMINATION_MESSAGE_LIMIT
        if overflow <= 0:
            return text
        cut = self.message[: max(0, len(self.message) - overflow - 16)]
        shorter = self.model_copy(update={"message": cut})
        text = json.dumps(shorter.to_dict(), separators=(",", ":"))
        if len(text.encode()) > TERMINATION_MESSAGE_LIMIT:
            text = json.dumps(shorter.model_copy(update={"curve": []}).to_dict(), separators=(",", ":"))
        return text
