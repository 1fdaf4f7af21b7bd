"""The NASExperiment custom resource: what a user writes."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from kubenas_trainer.spec import (
    BUILTIN_DATASETS,
    CLASSIFICATION_METRICS,
    DATA_FILE_SUFFIXES,
    DOWNLOADABLE_DATASETS,
    OBJECTIVE_METRICS,
    REGRESSION_DATASETS,
    REGRESSION_METRICS,
    CamelModel,
    Direction,
    ObjectiveRef,
    Task,
    Training,
)
from pydantic import ConfigDict, Field, JsonValue, field_validator, model_validator
from pydantic.alias_generators import to_snake

from kubenas.api.kube import DNS_LABEL, DNS_SUBDOMAIN, GO_SPACE, cel_list, rule
from kubenas.api.outputs import MetricsSpec, StorageSpec
from kubenas.api.pod import (
    IMAGE_RULE,
    LABELS_RULE,
    VOLUME_SCHEMA,
    EnvVar,
    Resources,
    SecurityContext,
    Toleration,
    check_labels,
    check_volume,
)
from kubenas.api.space import EPOCHS, Range, SearchSpace

GROUP = "kubenas.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
DEFAULT_TRAINER_IMAGE = "ghcr.io/kubenas/kubenas-trainer:0.1.0"


class MetricGoal(CamelModel):
    """A validation metric and which way is better."""

    metric: str = Field(
        default="accuracy",
        description="Validation metric (trainingSeconds: the training time, a cost).",
        json_schema_extra={"enum": list(OBJECTIVE_METRICS)},
    )
    direction: Direction | None = Field(
        default=None, description="Which way is better (default: the metric's natural direction)."
    )

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if metric not in OBJECTIVE_METRICS:
            raise ValueError(f"unknown metric {metric!r}; must be one of {', '.join(OBJECTIVE_METRICS)}")
        return metric

    @property
    def goal(self) -> Direction:
        return self.direction or OBJECTIVE_METRICS[self.metric]

    @property
    def sign(self) -> float:
        """+1 when higher is better, -1 when lower is: sign * value is always to be maximised."""
        return 1.0 if self.goal is Direction.MAXIMIZE else -1.0


class Objective(MetricGoal):
    """The validation metric to optimise."""

    target: float | None = Field(
        default=None,
        description="Stop the experiment once a trial reaches this value, in the metric's own units (a "
        "fraction for accuracy, seconds for trainingSeconds).",
    )

    def ref(self) -> ObjectiveRef:
        """What the trainer needs to know of the objective."""
        return ObjectiveRef(metric=self.metric, direction=self.goal)

    def better(self, a: float, b: float) -> bool:
        """Whether value a is strictly better than value b."""
        return a > b if self.goal is Direction.MAXIMIZE else a < b

    def reached(self, value: float) -> bool:
        if self.target is None:
            return False
        return value >= self.target if self.goal is Direction.MAXIMIZE else value <= self.target


class StrategySpec(CamelModel):
    """Search strategy: how candidates are chosen."""

    name: str = Field(
        default="random", pattern=r"^[a-z][a-z0-9-]*$", description="Strategy name, e.g. random."
    )
    seed: int = Field(
        default=0, ge=0, le=2**31 - 1, description="Seed: the same seed proposes the same trials."
    )
    reuse_results: bool = Field(
        default=True,
        description="A candidate identical to an evaluated one reuses its result instead of training again.",
    )
    warm_start_from: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description=(
            "Another experiment (same namespace; locally, the same output directory) whose succeeded trials "
            "seed the strategy's history. Its results are not reused: it may have trained differently."
        ),
    )
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="Strategy-specific settings, validated by the strategy.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


# Every child's name must fit where Kubernetes puts it: a trial is <experiment>-<index>, its Jobs are
# <trial> and, continuing a paused trial, <trial>-e<epochs>; a Job's name is its pods' label job-name (a
# label value: at most 63 characters), and its pods are <job>-<5 random characters> (a DNS label: 63).
MAX_TRIALS = 100000
MAX_EPOCHS = int(max(Range.of(Training, "epochs").high, EPOCHS.high))
NAME_LIMIT = 63 - len(f"-{MAX_TRIALS - 1}") - len(f"-e{MAX_EPOCHS}") - len("-xxxxx")
NAME_RULE = (
    f"so that a trial's Job <name>-<index>-e<epochs> and its pods <job>-<5 characters> fit in 63 "
    f"(index < {MAX_TRIALS}, epochs <= {MAX_EPOCHS})"
)
NAME_PATTERN_RULE = "must be a DNS label: lowercase letters, digits and '-', starting and ending alphanumeric"
# The CRD's rules on metadata.name (the API server itself only checks a DNS subdomain, <= 253).
NAME_RULES: list[JsonValue] = [
    rule(
        f"!has(self.metadata.name) || self.metadata.name.size() <= {NAME_LIMIT}",
        f"must be at most {NAME_LIMIT} characters, {NAME_RULE}",
        ".metadata.name",
    ),
    rule(
        f"!has(self.metadata.name) || self.metadata.name.matches('{DNS_LABEL}')",
        NAME_PATTERN_RULE,
        ".metadata.name",
    ),
]


class Budget(CamelModel):
    """How many trials, how many at once, how many failures are tolerated, how long and how many
    GPU-hours the whole experiment may take."""

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.parallelTrials <= self.maxTrials",
                    "message": "parallelTrials must be <= maxTrials",
                }
            ]
        }
    }

    max_trials: int = Field(default=10, ge=1, le=MAX_TRIALS, description="Trials to run in total.")
    parallel_trials: int = Field(default=1, ge=1, le=10000, description="Trials running at the same time.")
    max_failed_trials: int = Field(
        default=3, ge=0, description="The experiment fails when more trials than this have failed."
    )
    max_duration_seconds: int | None = Field(
        default=None,
        ge=1,
        description="Wall-clock limit of the whole experiment, in seconds from its start: then no trial "
        "is launched, running ones are stopped, and it ends with reason WallClockBudgetExhausted "
        "(default: none).",
    )
    max_gpu_hours: float | None = Field(
        default=None,
        gt=0,
        description="GPU-hours the experiment's trials may use, the sum over trials of the GPUs each "
        "holds (trialTemplate.resources: nvidia.com/gpu, MIG slices and time-sliced shares count one each) "
        "times the hours it ran (not queued); locally the same count applies. Once used up, no trial is "
        "launched, running ones are stopped, and it ends with reason GPUHoursBudgetExhausted (default: "
        "none).",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.parallel_trials > self.max_trials:
            raise ValueError(
                f"parallelTrials must be <= maxTrials (parallelTrials={self.parallel_trials}, "
                f"maxTrials={self.max_trials})"
            )
        return self


# Marks the schema of a section whose defaults the operator applies (its --trial-defaults, then the
# models'), so the CRD gives the API server none to fill in: a field left out stays out.
OPERATOR_DEFAULTS = "x-kubenas-operator-defaults"


class TrialTemplate(CamelModel):
    """How each trial's Job looks on a cluster (ignored by the local runner, except env). A field left out
    takes the operator's default (its --trial-defaults), else the one stated here."""

    image: str = Field(
        default=DEFAULT_TRAINER_IMAGE,
        min_length=1,
        max_length=4096,
        description="Trainer image.",
        json_schema_extra={"x-kubernetes-validations": [rule("self == self.trim()", IMAGE_RULE)]},
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        default=None,
        description="When the node pulls the trainer image (default: Kubernetes' own, Always for :latest "
        "and IfNotPresent otherwise).",
    )
    resources: Resources = Field(
        default=Resources(requests={"cpu": "1", "memory": "2Gi"}, limits={"nvidia.com/gpu": 1}),
        description="Requests and limits; one nvidia.com/gpu by default.",
    )
    node_selector: dict[str, Annotated[str, Field(max_length=63)]] = Field(
        default_factory=dict,
        max_length=32,
        description="Node selector of trial pods (label keys and values).",
        json_schema_extra={"x-kubernetes-validations": [LABELS_RULE]},
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=32, description="Tolerations of trial pods."
    )
    env: list[EnvVar] = Field(default_factory=list, description="Extra environment of the trainer.")
    service_account_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="Service account of trial pods (its token is not mounted: trials never call the API).",
    )
    priority_class_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="PriorityClass of trial pods (default: the cluster's default priority).",
    )
    queue_name: str | None = Field(
        default=None,
        max_length=63,
        pattern=DNS_SUBDOMAIN,
        description="A Kueue LocalQueue in the experiment's namespace: each trial's Job is labelled "
        "kueue.x-k8s.io/queue-name and created suspended; Kueue admits it by unsuspending it. Until then "
        "the trial is Pending with reason Queued (status.trials.queued): it holds a parallel slot but no "
        "GPU, and no deadline runs.",
    )
    security_context: SecurityContext = Field(
        default=SecurityContext(),
        description="How trial pods run (non-root, read-only root filesystem, seccomp RuntimeDefault by "
        "default); capabilities are always all dropped and privilege escalation off.",
    )
    backoff_limit: int = Field(
        default=3,
        ge=0,
        le=10,
        description="Pods of a segment that may be preempted, evicted or crash and be replaced (each "
        "replacement resumes the trial's checkpoint) before the trial fails. A trainer that exits with a "
        "failure (exit code 1 or 2) is not retried: another pod would answer the same.",
    )
    active_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        description="Wall-clock limit of one trial segment's Job, in seconds from its start (a queued Job's "
        "starts when it is admitted) (default: none).",
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=60,
        description="Seconds after a trial segment's Job finished that Kubernetes deletes it with its pods "
        "(default: kept until the trial is deleted). At least 60: the operator reads the result from the "
        "finished pod, and a Job deleted unread is run again.",
    )
    checkpoint_volume: dict[str, Any] | None = Field(
        default=None,
        description=(
            "A Kubernetes volume source (e.g. {persistentVolumeClaim: {claimName: ...}} with ReadWriteMany, "
            "or hostPath on a single node) mounted in every trial pod at /var/lib/kubenas; each trial writes "
            "its output, checkpoint included, to <namespace>/<experiment>/<trial> there. Required on a "
            "cluster by earlyStopping asha/hyperband and strategies pbt/miha: a continued trial reads the "
            "checkpoint an earlier Job wrote."
        ),
        json_schema_extra=VOLUME_SCHEMA,
    )

    @field_validator("checkpoint_volume")
    @classmethod
    def _one_source(cls, volume: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if volume is None else check_volume(volume)

    @field_validator("image")
    @classmethod
    def _no_surrounding_space(cls, image: str) -> str:
        if image.strip(GO_SPACE) != image:
            raise ValueError(f"{IMAGE_RULE} (image={image!r})")
        return image

    @field_validator("node_selector")
    @classmethod
    def _labels(cls, selector: dict[str, str]) -> dict[str, str]:
        return check_labels(selector)


class EarlyStopping(CamelModel):
    """Stop or pause trials that fall behind, judged on their per-epoch validation objective."""

    rule: Literal["none", "median", "asha", "hyperband"] = Field(
        default="none",
        description=(
            "median: stop a trial whose best objective so far is worse than the median of the other trials' "
            "running averages at the same epoch (Google Vizier's median stopping rule). "
            "asha: asynchronous successive halving; trials pause at rungs minEpochs * reductionFactor^k "
            "and only the top 1/reductionFactor at a rung is promoted, resuming from its checkpoint, "
            "up to training.epochs. hyperband: asynchronous Hyperband, ASHA brackets with later first rungs."
        ),
    )
    grace_epochs: int = Field(
        default=1, ge=0, description="median: epochs every trial runs before it can be stopped."
    )
    min_trials: int = Field(
        default=3, ge=1, description="median: trials that must have reached an epoch to compare."
    )
    min_epochs: int = Field(
        default=1, ge=1, le=10000, description="asha, hyperband: the first rung (epochs)."
    )
    reduction_factor: int = Field(
        default=3, ge=2, le=100, description="asha, hyperband: 1/reductionFactor of a rung is promoted."
    )


def _default(model: type[CamelModel], field: str) -> str:
    value = model.model_fields[to_snake(field)].default
    return repr(value) if isinstance(value, int | float) else f"'{value}'"


def _or_default(section: str, field: str, model: type[CamelModel]) -> str:
    """CEL for spec.<section>.<field>, or the model's default when left out (the API server fills a
    default in only where the section itself is given)."""
    path = f"self.{section}.{field}"
    return f"(has(self.{section}) && has({path}) ? {path} : {_default(model, field)})"


def _or_default_here(field: str, model: type[CamelModel]) -> str:
    return f"(has(self.{field}) ? self.{field} : {_default(model, field)})"


_KNOWN_DATASETS = BUILTIN_DATASETS + DOWNLOADABLE_DATASETS
_METRIC = _or_default("objective", "metric", Objective)
_DATASET = _or_default("training", "dataset", Training)
_KNOWN_TASK = f"(has(self.training) && has(self.training.task) || {_DATASET} in {cel_list(_KNOWN_DATASETS)})"
_REGRESSION = (
    "(has(self.training) && has(self.training.task) ? self.training.task == 'regression' : "
    f"{_DATASET} in {cel_list(REGRESSION_DATASETS)})"
)
_ASHA = f"{_or_default('earlyStopping', 'rule', EarlyStopping)} in ['asha', 'hyperband']"
# The spec's cross-field rules (those of NASExperimentSpec and Training), as the API server checks them.
_SPEC_RULES: list[JsonValue] = [
    rule(
        f"{_METRIC} == 'trainingSeconds' || !{_KNOWN_TASK} || ({_REGRESSION} ? "
        f"{_METRIC} in {cel_list(REGRESSION_METRICS)} : {_METRIC} in {cel_list(CLASSIFICATION_METRICS)})",
        "must be a metric the data set's task reports: "
        f"{', '.join(CLASSIFICATION_METRICS)} for classification, {', '.join(REGRESSION_METRICS)} for "
        "regression, or trainingSeconds",
        ".objective.metric",
    ),
    rule(
        f"!({_ASHA}) || !has(self.searchSpace) || !has(self.searchSpace.hyperparameters) "
        "|| !has(self.searchSpace.hyperparameters.epochs)",
        "must be left out with earlyStopping.rule asha or hyperband, which decides how many epochs each "
        "trial trains (up to training.epochs)",
        ".searchSpace.hyperparameters.epochs",
    ),
    rule(
        f"!({_ASHA}) || {_or_default('earlyStopping', 'minEpochs', EarlyStopping)} < "
        f"{_or_default('training', 'epochs', Training)}",
        "must be below training.epochs with earlyStopping.rule asha or hyperband",
        ".earlyStopping.minEpochs",
    ),
]
_TRAINING_RULES: list[JsonValue] = [
    rule(
        f"!has(self.dataset) || self.dataset in {cel_list(_KNOWN_DATASETS)} || "
        + " || ".join(f"self.dataset.endsWith('{suffix}')" for suffix in DATA_FILE_SUFFIXES)
        + " || self.dataset.contains('/')",
        f"must be one of {', '.join(_KNOWN_DATASETS)}, or a path or s3:// URI of a .npz, .csv, .parquet or "
        "IDX file",
        ".dataset",
    ),
    rule(
        f"{_or_default_here('validationFraction', Training)} + "
        f"{_or_default_here('testFraction', Training)} <= 0.9",
        "validationFraction + testFraction must be <= 0.9",
    ),
]


class NASExperimentSpec(CamelModel):
    model_config = CamelModel.model_config | {"json_schema_extra": {"x-kubernetes-validations": _SPEC_RULES}}

    objective: Objective = Field(default=Objective(), description="What to optimise.")
    search_space: SearchSpace = Field(default=SearchSpace(), description="Candidates to search over.")
    strategy: StrategySpec = Field(default=StrategySpec(), description="How candidates are chosen.")
    budget: Budget = Field(default=Budget(), description="Trial budget.")
    training: Training = Field(
        default=Training(),
        description="How each trial trains.",
        json_schema_extra={"x-kubernetes-validations": _TRAINING_RULES},
    )
    early_stopping: EarlyStopping = Field(
        default=EarlyStopping(),
        description=(
            "Stop poor trials early from their per-epoch metrics. median needs live per-epoch metrics: the "
            "local runner has them; on a cluster they come through spec.metrics (Pushgateway and "
            "Prometheus), and without them the rule waits. asha and hyperband pause trials at rungs and "
            "continue them from their checkpoints."
        ),
    )
    trial_template: TrialTemplate = Field(
        default=TrialTemplate(),
        description="Trial pods on a cluster.",
        json_schema_extra={OPERATOR_DEFAULTS: True},
    )
    metrics: MetricsSpec | None = Field(
        default=None, description="Live per-epoch metrics (default: the operator's own, if it has one)."
    )
    storage: StorageSpec | None = Field(
        default=None,
        description="Object storage of trials' outputs (default: the operator's own, if it has one).",
    )

    @model_validator(mode="after")
    def _objective_fits_the_task(self) -> Self:
        task = self.training.known_task()
        reported = {
            Task.CLASSIFICATION: CLASSIFICATION_METRICS,
            Task.REGRESSION: REGRESSION_METRICS,
        }
        metric = self.objective.metric
        if task is not None and metric != "trainingSeconds" and metric not in reported[task]:
            raise ValueError(
                f"objective.metric: {metric} is not reported for {task} data set "
                f"{self.training.dataset!r}; use one of {', '.join(reported[task])}"
            )
        return self

    @model_validator(mode="after")
    def _rungs_fit_the_epochs(self) -> Self:
        rule = self.early_stopping
        if rule.rule in ("asha", "hyperband") and self.search_space.hyperparameters.epochs is not None:
            raise ValueError(
                f"searchSpace.hyperparameters.epochs: must be left out with earlyStopping.rule {rule.rule}, "
                "which decides how many epochs each trial trains (up to training.epochs)"
            )
        if rule.rule in ("asha", "hyperband") and rule.min_epochs >= self.training.epochs:
            raise ValueError(
                f"earlyStopping.minEpochs: must be below training.epochs for rule {rule.rule} "
                f"(minEpochs={rule.min_epochs}, training.epochs={self.training.epochs})"
            )
        return self


# The fields of a Kubernetes ObjectMeta (a manifest's metadata); any other is a typo.
OBJECT_META = [
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
]


class Metadata(CamelModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, pattern=DNS_LABEL, description=f"At most {NAME_LIMIT} characters.")
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(OBJECT_META))
            if unknown:
                raise ValueError(f"{unknown[0]}: not a field of metadata (ObjectMeta)")
        return data

    @field_validator("name")
    @classmethod
    def _fits(cls, name: str) -> str:
        if len(name) > NAME_LIMIT:
            raise ValueError(f"must be at most {NAME_LIMIT} characters (got {len(name)}), {NAME_RULE}")
        return name

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        return check_labels(labels)


class NASExperiment(CamelModel):
    """A whole manifest, as read by the local runner (and as `kubectl apply` would send it)."""

    api_version: str = Field(default=API_VERSION, pattern=rf"^{GROUP}/")
    kind: str = Field(default="NASExperiment", pattern="^NASExperiment$")
    metadata: Metadata
    spec: NASExperimentSpec
    status: dict[str, Any] | None = Field(default=None, description="Written by the operator; ignored here.")
