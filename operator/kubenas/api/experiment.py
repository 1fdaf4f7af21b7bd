"""The NASExperiment custom resource: what a user writes."""

from __future__ import annotations

from typing import Any, Literal, Self

from kubenas_trainer.spec import (
    CLASSIFICATION_METRICS,
    OBJECTIVE_METRICS,
    REGRESSION_METRICS,
    CamelModel,
    Direction,
    ObjectiveRef,
    Task,
    Training,
)
from pydantic import ConfigDict, Field, field_validator, model_validator

from kubenas.api.outputs import MetricsSpec, StorageSpec
from kubenas.api.space import SearchSpace

GROUP = "kubenas.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
DEFAULT_TRAINER_IMAGE = "ghcr.io/kubenas/kubenas-trainer:0.1.0"

Quantity = int | str


class MetricGoal(CamelModel):
    """A validation metric and which way is better."""

    metric: str = Field(
        default="accuracy",
        description=f"Validation metric: one of {', '.join(OBJECTIVE_METRICS)}.",
        json_schema_extra={"enum": list(OBJECTIVE_METRICS)},
    )
    direction: Direction | None = Field(
        default=None, description="maximize or minimize; defaults to the metric's natural direction."
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
        default=None, description="Stop the experiment once a trial reaches this value."
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


class Budget(CamelModel):
    """How many trials, how many at once, and how many failures are tolerated."""

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

    max_trials: int = Field(default=10, ge=1, le=100000, description="Trials to run in total.")
    parallel_trials: int = Field(default=1, ge=1, le=10000, description="Trials running at the same time.")
    max_failed_trials: int = Field(
        default=3, ge=0, description="The experiment fails when more trials than this have failed."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.parallel_trials > self.max_trials:
            raise ValueError(
                f"parallelTrials must be <= maxTrials (parallelTrials={self.parallel_trials}, "
                f"maxTrials={self.max_trials})"
            )
        return self


class Toleration(CamelModel):
    key: str | None = None
    operator: str | None = Field(default=None, json_schema_extra={"enum": ["Exists", "Equal"]})
    value: str | None = None
    effect: str | None = Field(
        default=None, json_schema_extra={"enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"]}
    )
    toleration_seconds: int | None = None


class EnvVar(CamelModel):
    name: str = Field(min_length=1, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
    value: str = ""


class Resources(CamelModel):
    requests: dict[str, Quantity] = Field(default_factory=dict, description="Resource requests of a trial.")
    limits: dict[str, Quantity] = Field(default_factory=dict, description="Resource limits of a trial.")


class TrialTemplate(CamelModel):
    """How each trial's Job looks on a cluster (ignored by the local runner, except env)."""

    image: str = Field(default=DEFAULT_TRAINER_IMAGE, min_length=1, description="Trainer image.")
    image_pull_policy: str | None = Field(
        default=None, json_schema_extra={"enum": ["Always", "IfNotPresent", "Never"]}
    )
    resources: Resources = Field(
        default=Resources(requests={"cpu": "1", "memory": "2Gi"}, limits={"nvidia.com/gpu": 1}),
        description="Requests and limits; one nvidia.com/gpu by default.",
    )
    node_selector: dict[str, str] = Field(default_factory=dict, description="Node selector of trial pods.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Tolerations of trial pods.")
    env: list[EnvVar] = Field(default_factory=list, description="Extra environment of the trainer.")
    service_account_name: str | None = Field(default=None, description="Service account of trial pods.")
    backoff_limit: int = Field(default=0, ge=0, le=10, description="Pod retries before a trial fails.")
    active_deadline_seconds: int | None = Field(
        default=None, ge=1, description="Wall-clock limit of one trial."
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
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


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


class NASExperimentSpec(CamelModel):
    objective: Objective = Field(default=Objective(), description="What to optimise.")
    search_space: SearchSpace = Field(default=SearchSpace(), description="Candidates to search over.")
    strategy: StrategySpec = Field(default=StrategySpec(), description="How candidates are chosen.")
    budget: Budget = Field(default=Budget(), description="Trial budget.")
    training: Training = Field(default=Training(), description="How each trial trains.")
    early_stopping: EarlyStopping = Field(
        default=EarlyStopping(),
        description=(
            "Stop poor trials early from their per-epoch metrics. median needs live per-epoch metrics: the "
            "local runner has them; on a cluster they come through spec.metrics (Pushgateway and "
            "Prometheus), and without them the rule waits. asha and hyperband pause trials at rungs and "
            "continue them from their checkpoints."
        ),
    )
    trial_template: TrialTemplate = Field(default=TrialTemplate(), description="Trial pods on a cluster.")
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


class Metadata(CamelModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=52, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    namespace: str | None = None


class NASExperiment(CamelModel):
    """A whole manifest, as read by the local runner."""

    model_config = ConfigDict(extra="ignore")

    api_version: str = Field(default=API_VERSION, pattern=rf"^{GROUP}/")
    kind: str = Field(default="NASExperiment", pattern="^NASExperiment$")
    metadata: Metadata
    spec: NASExperimentSpec = Field(default=NASExperimentSpec())
