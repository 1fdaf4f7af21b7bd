"""What the controller knows of one trial, whichever backend observed it (the API server or a run dir)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kubenas_trainer.spec import Candidate

from kubenas.api.status import NASTrialSpec, NASTrialStatus, TrialPhase
from kubenas.engine.clock import elapsed


def trial_name(experiment: str, index: int) -> str:
    """Deterministic child name: creating it twice is impossible, so it doubles as a lock."""
    return f"{experiment}-{index}"


@dataclass(frozen=True)
class TrialRecord:
    name: str
    index: int
    seed: int
    candidate: Candidate
    phase: TrialPhase = TrialPhase.PENDING
    metrics: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    message: str = ""
    epochs: int | None = None
    # Validation metrics after each epoch so far, where the backend observes them live.
    epoch_metrics: tuple[dict[str, float], ...] = ()
    # The objective after each epoch as the trainer last reported it (at a pause or the end).
    curve: tuple[float, ...] = ()
    # False when the trial is recorded but nothing runs it (never started, or its segment vanished).
    launched: bool = True
    # Set by strategies that continue trials (PBT, MIHA): the trial whose checkpoint this one starts
    # from, where it pauses, and why it was made.
    start_from: str | None = None
    stop_at_epoch: int | None = None
    note: str = ""
    start_time: str | None = None
    # Which train/validation/test split it was trained and validated on (the trainer's fingerprint).
    split_fingerprint: str | None = None
    # Where its run directory is (object storage or a local path), once it reported.
    artifacts: str | None = None
    # Why it failed (the trainer's FailureReason), when it did; Queued while its Job awaits admission.
    reason: str | None = None
    # Seconds its ended runs took, and when its current run began (while Running): its GPU time.
    run_seconds: float = 0.0
    running_since: str | None = None


def record(
    spec: NASTrialSpec,
    status: NASTrialStatus,
    name: str,
    launched: bool = True,
    epoch_metrics: tuple[dict[str, float], ...] = (),
) -> TrialRecord:
    return TrialRecord(
        name=name,
        index=spec.index,
        seed=spec.seed,
        candidate=spec.candidate,
        phase=status.phase,
        metrics=status.metrics,
        test_metrics=status.test_metrics,
        message=status.message,
        epochs=status.epochs,
        epoch_metrics=epoch_metrics,
        curve=tuple(status.curve),
        launched=launched,
        start_from=spec.start_from,
        stop_at_epoch=spec.stop_at_epoch,
        note=spec.note,
        start_time=status.start_time,
        split_fingerprint=status.split_fingerprint,
        artifacts=status.artifacts,
        reason=status.reason,
        run_seconds=status.run_seconds or 0.0,
        running_since=status.running_since,
    )


def ran(trial: TrialRecord, now: str) -> float:
    """Seconds the trial has run by `now`: its ended runs and the current one."""
    current = elapsed(trial.running_since, now) if trial.running_since else 0.0
    return round(trial.run_seconds + current, 3)
