"""What the controller knows of one trial, whoever observed it (the API server or the local run dir)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
from kubenas_trainer.spec import Candidate, ObjectiveRef, Training, TrialResult, TrialSpec
from pydantic import ValidationError

from kubenas.api.status import NASTrialSpec, NASTrialStatus, TrialPhase


def trial_name(experiment: str, index: int) -> str:
    """Deterministic child name: creating it twice is impossible, so it doubles as a lock."""
    return f"{experiment}-{index}"


def trial_seed(experiment_seed: int, index: int) -> int:
    """A trial's own seed: a function of the experiment's seed and the trial's index only."""
    return int(np.random.SeedSequence([experiment_seed, index]).generate_state(1)[0] >> 1)


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
    progress: tuple[dict[str, float], ...] = ()
    # The objective after each epoch as the trainer last reported it (at a pause or the end).
    curve: tuple[float, ...] = ()
    # False when the trial is recorded but nothing runs it yet (e.g. the runner died in between).
    launched: bool = True
    # Set by strategies that continue trials (PBT, MIHA): the trial whose checkpoint this one starts
    # from, where it pauses, and why it was made.
    start_from: str | None = None
    stop_at_epoch: int | None = None
    note: str = ""


def status_from_result(
    result: TrialResult, objective_metric: str, now: str, start_time: str | None
) -> NASTrialStatus:
    """A finished trial's status from what its trainer reported."""
    succeeded = result.phase in ("Succeeded", "Paused")
    value = result.metrics.get(objective_metric) if succeeded else None
    message = result.message
    if succeeded and value is None:
        succeeded, message = False, f"the trainer reported no {objective_metric!r} metric"
    phase = TrialPhase.PAUSED if result.phase == "Paused" else TrialPhase.SUCCEEDED
    return NASTrialStatus(
        phase=phase if succeeded else TrialPhase.FAILED,
        objective_value=value,
        metrics=result.metrics,
        test_metrics=result.test_metrics,
        epochs=result.epochs,
        curve=result.curve,
        message=message,
        start_time=start_time,
        completion_time=now,
    )


def parse_result(text: str, name: str) -> TrialResult:
    """The trainer's result, or a Failed result carrying whatever text came instead (e.g. a log tail)."""
    try:
        return TrialResult.model_validate(json.loads(text))
    except (ValueError, ValidationError):
        tail = text.strip()[-1000:] or "no result reported"
        return TrialResult(name=name, phase="Failed", message=tail)


def record(spec: NASTrialSpec, status: NASTrialStatus, name: str, launched: bool) -> TrialRecord:
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
        curve=tuple(status.curve),
        launched=launched,
        start_from=spec.start_from,
        stop_at_epoch=spec.stop_at_epoch,
        note=spec.note,
    )


def trial_spec(
    name: str,
    spec: NASTrialSpec,
    training: Training,
    objective: ObjectiveRef | None = None,
    stop_at: int | None = None,
    start_from: str | None = None,
) -> TrialSpec:
    """The trainer's input for one trial (the objective picks its best epoch and drives early stopping);
    `start_from` is the path of the checkpoint named by spec.start_from, `stop_at` where it pauses."""
    return TrialSpec(
        name=name,
        candidate=spec.candidate,
        training=training,
        seed=spec.seed,
        objective=objective,
        stop_at_epoch=stop_at,
        start_from=start_from,
    )
