"""Status of the custom resources: small, derived from the trials every time."""

from __future__ import annotations

from enum import StrEnum

from kubenas_trainer.spec import CamelModel, Candidate
from pydantic import Field


class TrialPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    PAUSED = "Paused"  # reached its stopAtEpoch; its checkpoint can be continued (ASHA, PBT, MIHA)
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    STOPPED = "Stopped"

    @property
    def finished(self) -> bool:
        return self in (TrialPhase.SUCCEEDED, TrialPhase.FAILED, TrialPhase.STOPPED)


class ExperimentPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class Condition(CamelModel):
    type: str = Field(description="Running, Succeeded or Failed.")
    status: str = Field(
        description="Whether the condition holds.", json_schema_extra={"enum": ["True", "False", "Unknown"]}
    )
    reason: str = Field(description="One-word CamelCase reason.")
    message: str = Field(default="", description="What happened, for people.")
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation of the spec the condition was set for."
    )
    last_transition_time: str | None = Field(
        default=None, description="When the status last changed (RFC 3339 UTC time)."
    )


class TrialCounts(CamelModel):
    """How many trials are in each phase."""

    created: int = Field(default=0, description="Trials created so far.")
    pending: int = Field(default=0, description="Trials created and not started yet.")
    queued: int = Field(
        default=0,
        description="Of the pending trials, those whose Job waits suspended for admission (Kueue): they "
        "hold no GPU and run no deadline.",
    )
    running: int = Field(default=0, description="Trials training now.")
    paused: int = Field(default=0, description="Trials paused at a rung or segment end, checkpoint kept.")
    succeeded: int = Field(default=0, description="Trials that trained to the end.")
    failed: int = Field(default=0, description="Trials that failed.")
    stopped: int = Field(default=0, description="Trials stopped early (median rule, ASHA, PBT, MIHA).")


class BestTrial(CamelModel):
    """The best trial so far on the objective."""

    trial: str = Field(description="Name of the best trial.")
    objective_value: float = Field(description="Its objective value, in the metric's own units.")
    candidate: Candidate
    metrics: dict[str, float] = Field(default_factory=dict, description="Validation metrics.")
    test_metrics: dict[str, float] = Field(default_factory=dict, description="Held-out test metrics.")
    model_uri: str | None = Field(
        default=None,
        description="The trained model exported with torch.export (normalisation built in): "
        "torch.export.load(path).module()(x).",
    )
    tensorboard_uri: str | None = Field(default=None, description="The trial's TensorBoard event files.")


class ParetoMember(CamelModel):
    trial: str = Field(description="Name of the trial.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Its validation metrics.")


class TrialSummary(CamelModel):
    name: str = Field(description="Name of the trial.")
    phase: TrialPhase = Field(description="Its phase.")
    objective_value: float | None = Field(default=None, description="Its objective value, once known.")


class Backoff(CamelModel):
    """Why the operator holds off creating anything for now, and until when (doubling per attempt)."""

    reason: str = Field(description="CreateFailure (the API server refused a child) or StrategyFailure.")
    attempts: int = Field(ge=1, description="Failed attempts in a row.")
    next_attempt: str = Field(description="When the operator tries again (RFC 3339 UTC time).")


class NASExperimentStatus(CamelModel):
    phase: ExperimentPhase = Field(
        default=ExperimentPhase.PENDING, description="Where the experiment stands."
    )
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation of the spec this status was computed for."
    )
    progress: str = Field(default="", description="Finished trials / maxTrials.")
    trials: TrialCounts = Field(default=TrialCounts(), description="How many trials are in each phase.")
    best: BestTrial | None = Field(default=None, description="The best trial so far on the objective.")
    pareto_front: list[ParetoMember] | None = Field(
        default=None, description="Multi-objective strategies: the non-dominated trials (at most 20 listed)."
    )
    pareto_front_size: int | None = Field(default=None, description="How many trials are non-dominated.")
    recent_trials: list[TrialSummary] = Field(default_factory=list, description="The last few trials.")
    conditions: list[Condition] = Field(
        default_factory=list, description="Running, Succeeded, Failed and the operator's health conditions."
    )
    backoff: Backoff | None = Field(
        default=None, description="Set while an attempt failed: nothing new is created until nextAttempt."
    )
    gpu_hours: float | None = Field(
        default=None,
        description="GPU-hours the trials have used so far (GPUs held x hours run, queued time not "
        "counted), to 0.01; set when trials hold GPUs or budget.maxGpuHours is set.",
    )
    start_time: str | None = Field(
        default=None, description="When the operator took the experiment up (RFC 3339 UTC time)."
    )
    completion_time: str | None = Field(
        default=None, description="When the experiment finished (RFC 3339 UTC time)."
    )


class NASTrialSpec(CamelModel):
    experiment: str = Field(description="Name of the owning NASExperiment.")
    index: int = Field(ge=0, description="Position of the trial in its experiment.")
    candidate_key: str = Field(description="Canonical hash of the candidate.")
    seed: int = Field(ge=0, description="The trial's seed: its initial weights and batch order.")
    candidate: Candidate = Field(description="What the trial trains: an architecture and hyperparameters.")
    start_from: str | None = Field(
        default=None,
        description="The trial whose checkpoint this one starts from (PBT exploit, MIHA clone); the "
        "candidate keeps that trial's weight shapes.",
    )
    stop_at_epoch: int | None = Field(
        default=None, ge=1, description="Pause after this many epochs in total (a PBT or MIHA segment)."
    )
    note: str = Field(default="", description="Why the strategy made this trial (e.g. PBT's change log).")


class NASTrialStatus(CamelModel):
    phase: TrialPhase = Field(default=TrialPhase.PENDING, description="Where the trial stands.")
    objective_value: float | None = Field(
        default=None, description="The objective metric's value, in the metric's own units."
    )
    metrics: dict[str, float] = Field(
        default_factory=dict,
        description="Validation metrics of the best epoch (of the last one while paused), and costs: "
        "trainingSeconds and inferenceSecondsPerSample in seconds, peakMemoryBytes in bytes, parameters, "
        "flops.",
    )
    test_metrics: dict[str, float] = Field(
        default_factory=dict,
        description="Held-out test metrics of the best epoch (never used for selection).",
    )
    epochs: int | None = Field(default=None, description="Epochs trained so far.")
    curve: list[float] = Field(
        default_factory=list,
        description="The validation objective after each epoch, as of the last pause or the end.",
    )
    split_fingerprint: str | None = Field(
        default=None,
        description="Fingerprint of the train/validation/test split the trial was trained and validated on: "
        "the same for every trial of an experiment.",
    )
    artifacts: str | None = Field(
        default=None,
        description="Where the trial's run directory is (s3:// with spec.storage, file:// locally): result, "
        "metrics, checkpoint, model.pt2, tensorboard/.",
    )
    restarts: int | None = Field(
        default=None,
        description="Pods of the current segment that were preempted, evicted or crashed and replaced (each "
        "resumed the checkpoint), bounded by trialTemplate.backoffLimit.",
    )
    reason: str | None = Field(
        default=None,
        description="While Pending, Queued: its Job waits suspended for admission (Kueue). Why it failed: "
        "InvalidCandidate (this candidate cannot be built for the data), "
        "InvalidSpec or DataUnavailable (no candidate could run: the experiment fails at once), "
        "TrainingFailed, Interrupted.",
    )
    run_seconds: float | None = Field(
        default=None,
        description="Seconds its segments ran, up to the last that stopped running (the GPU-hours "
        "budget's clock; time queued or paused is not counted).",
    )
    running_since: str | None = Field(
        default=None, description="While Running: when its current run began (RFC 3339 UTC time)."
    )
    message: str = Field(default="", description="What happened, for people.")
    start_time: str | None = Field(default=None, description="When the trial started (RFC 3339 UTC time).")
    completion_time: str | None = Field(
        default=None, description="When the trial finished (RFC 3339 UTC time)."
    )
