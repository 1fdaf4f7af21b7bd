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
        description="True, False or Unknown.", json_schema_extra={"enum": ["True", "False", "Unknown"]}
    )
    reason: str = Field(description="One-word CamelCase reason.")
    message: str = ""
    observed_generation: int | None = None
    last_transition_time: str | None = None


class TrialCounts(CamelModel):
    created: int = 0
    pending: int = 0
    running: int = 0
    paused: int = 0
    succeeded: int = 0
    failed: int = 0
    stopped: int = 0


class BestTrial(CamelModel):
    trial: str = Field(description="Name of the best trial.")
    objective_value: float
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
    trial: str
    metrics: dict[str, float] = Field(default_factory=dict)


class TrialSummary(CamelModel):
    name: str
    phase: TrialPhase
    objective_value: float | None = None


class Backoff(CamelModel):
    """Why the operator holds off creating anything for now, and until when (doubling per attempt)."""

    reason: str = Field(description="CreateFailure (the API server refused a child) or StrategyFailure.")
    attempts: int = Field(ge=1, description="Failed attempts in a row.")
    next_attempt: str = Field(description="When the operator tries again.")


class NASExperimentStatus(CamelModel):
    phase: ExperimentPhase = ExperimentPhase.PENDING
    observed_generation: int | None = None
    progress: str = Field(default="", description="Finished trials / maxTrials.")
    trials: TrialCounts = TrialCounts()
    best: BestTrial | None = None
    pareto_front: list[ParetoMember] | None = Field(
        default=None, description="Multi-objective strategies: the non-dominated trials (at most 20 listed)."
    )
    pareto_front_size: int | None = Field(default=None, description="How many trials are non-dominated.")
    recent_trials: list[TrialSummary] = Field(default_factory=list, description="The last few trials.")
    conditions: list[Condition] = Field(default_factory=list)
    backoff: Backoff | None = Field(
        default=None, description="Set while an attempt failed: nothing new is created until nextAttempt."
    )
    start_time: str | None = None
    completion_time: str | None = None


class NASTrialSpec(CamelModel):
    experiment: str = Field(description="Name of the owning NASExperiment.")
    index: int = Field(ge=0, description="Position of the trial in its experiment.")
    candidate_key: str = Field(description="Canonical hash of the candidate.")
    seed: int = Field(ge=0)
    candidate: Candidate
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
    phase: TrialPhase = TrialPhase.PENDING
    objective_value: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    test_metrics: dict[str, float] = Field(
        default_factory=dict,
        description="Held-out test metrics of the best epoch (never used for selection).",
    )
    epochs: int | None = None
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
        description="Why it failed: InvalidCandidate (this candidate cannot be built for the data), "
        "InvalidSpec or DataUnavailable (no candidate could run: the experiment fails at once), "
        "TrainingFailed, Interrupted.",
    )
    message: str = ""
    start_time: str | None = None
    completion_time: str | None = None
