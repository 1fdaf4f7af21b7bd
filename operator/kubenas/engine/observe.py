"""Observation: a trial's status from what its backend sees of the trial's current segment.

A trial runs in segments (a first one, then one per continuation from a pause), each one Job or one
process. A backend reports only the *current* segment, the one that started after the trial's
recorded epochs; advance() turns that into the trial's status. The rules live here once:

- a finished trial never changes again, and a paused one changes only when a promotion reopens it;
- a result is never replaced by an older segment's (fewer epochs than recorded);
- a running trial whose segment vanished (Job deleted, runner restarted) is pending again and is
  relaunched, resuming its checkpoint;
- a running trial's curve grows with its live per-epoch metrics, where the backend observes them;
- a segment waiting for admission (a suspended Job, Kueue) leaves the trial Pending with reason Queued:
  not running, not interrupted;
- the time a trial runs adds up over its runs (runSeconds), queued and paused time left out;
- a status is written, and an event sent, only on a real change;
- once a segment ended, the trial's live metrics are dropped (its status holds its curve).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from kubenas_trainer.spec import TrialResult
from pydantic import ValidationError

from kubenas.api.experiment import NASExperimentSpec
from kubenas.api.status import NASTrialSpec, NASTrialStatus, TrialPhase
from kubenas.engine.clock import elapsed
from kubenas.engine.events import Event
from kubenas.engine.records import TrialRecord, record

if TYPE_CHECKING:
    from kubenas.engine.backend import Backend


class SegmentState(StrEnum):
    ABSENT = "Absent"  # nothing runs the trial
    PENDING = "Pending"  # its Job or process exists but has not started training
    QUEUED = "Queued"  # its Job exists, suspended until admitted (Kueue): no pod, no deadline running
    RUNNING = "Running"
    ENDED = "Ended"  # it ended with `result` (a Failed one carrying the log tail if none was reported)


@dataclass(frozen=True)
class SegmentView:
    """What a backend sees of a trial's current segment; `ref` names it for stop_segment (a Job)."""

    state: SegmentState = SegmentState.ABSENT
    ref: str = ""
    result: TrialResult | None = None
    start_time: str | None = None
    end_time: str | None = None
    restarts: int = 0  # its pods (processes) that ended early and were replaced

    @property
    def active(self) -> bool:
        return self.state in (SegmentState.PENDING, SegmentState.QUEUED, SegmentState.RUNNING)


HEALTH_TYPES = ("MetricsAvailable", "StorageAvailable")
QUEUED = "Queued"  # a pending trial's reason while its segment waits for admission
QUEUED_MESSAGE = "its Job is suspended until admitted (e.g. by Kueue): no pod runs yet"


@dataclass(frozen=True)
class Health:
    """Whether a channel the experiment relies on works (a condition of the experiment's status)."""

    type: str  # one of HEALTH_TYPES
    ok: bool
    reason: str
    message: str = ""


@dataclass(frozen=True)
class ObservedTrial:
    """One trial as a backend sees it: as recorded, its current segment, and its live metrics."""

    name: str
    spec: NASTrialSpec
    status: NASTrialStatus
    segment: SegmentView = SegmentView()
    epoch_metrics: tuple[dict[str, float], ...] = ()


def parse_result(text: str, name: str) -> TrialResult:
    """The trainer's result, or a Failed result carrying whatever text came instead (e.g. a log tail)."""
    try:
        return TrialResult.model_validate(json.loads(text))
    except (ValueError, ValidationError):
        tail = text.strip()[-1000:] or "no result reported"
        return TrialResult(name=name, phase="Failed", message=tail)


def status_from_result(
    result: TrialResult, objective_metric: str, now: str, start_time: str | None
) -> NASTrialStatus:
    """A segment's outcome as the trial's status."""
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
        split_fingerprint=result.split_fingerprint,
        artifacts=result.artifacts,
        reason=result.reason if not succeeded else None,
        message=message,
        start_time=start_time,
        completion_time=now,
    )


def run_seconds(status: NASTrialStatus, until: str, segment_start: str | None = None) -> float | None:
    """The trial's run time once its current run ends at `until` (a run that began unseen: at
    `segment_start`)."""
    since = status.running_since or segment_start
    if since is None:
        return status.run_seconds
    return round((status.run_seconds or 0.0) + elapsed(since, until), 3)


def advance(
    status: NASTrialStatus,
    segment: SegmentView,
    objective_metric: str,
    now: str,
    epoch_metrics: Sequence[Mapping[str, float]] = (),
) -> NASTrialStatus:
    """The trial's status after what its current segment shows (equal to `status` when nothing changed)."""
    if status.phase.finished or status.phase is TrialPhase.PAUSED:
        return status
    if segment.state is SegmentState.ENDED and segment.result is not None:
        result = segment.result
        if result.phase != "Failed" and result.epochs < (status.epochs or 0):
            return status  # an older segment's report: what is recorded is newer
        ended = status_from_result(result, objective_metric, now, status.start_time or segment.start_time)
        if not ended.curve and status.curve:  # a curve too long for the termination message
            ended = ended.model_copy(update={"curve": status.curve})
        update: dict[str, object] = {
            "run_seconds": run_seconds(status, segment.end_time or now, segment.start_time)
        }
        restarts = max(segment.restarts, status.restarts or 0)
        if restarts:
            update["restarts"] = restarts
        return ended.model_copy(update=update)
    if segment.active:
        phase = TrialPhase.RUNNING if segment.state is SegmentState.RUNNING else TrialPhase.PENDING
        start = status.start_time or segment.start_time or (now if phase is TrialPhase.RUNNING else None)
        update = {"phase": phase, "start_time": start}
        if phase is TrialPhase.RUNNING:
            update["running_since"] = status.running_since or segment.start_time or now
        elif status.running_since is not None:  # it stopped running (its Job suspended again)
            update.update(run_seconds=run_seconds(status, now), running_since=None)
        queued = segment.state is SegmentState.QUEUED
        if queued:
            update.update(reason=QUEUED, message=QUEUED_MESSAGE)
        elif status.reason == QUEUED:  # admitted
            update.update(reason=None, message="")
        if segment.restarts > (status.restarts or 0):
            update["restarts"] = segment.restarts
        live = [row[objective_metric] for row in epoch_metrics if objective_metric in row]
        if len(live) > len(status.curve):
            update["curve"] = live
        return status.model_copy(update=update)
    if status.phase is TrialPhase.RUNNING:
        return status.model_copy(
            update={
                "phase": TrialPhase.PENDING,
                "message": "nothing runs it any more: it resumes from its last checkpoint",
                "run_seconds": run_seconds(status, now),
                "running_since": None,
            }
        )
    return status


def transition_event(name: str, before: NASTrialStatus, after: NASTrialStatus, metric: str) -> Event | None:
    """The event a status change deserves (one per transition)."""
    if after.reason == QUEUED and before.reason != QUEUED:
        return Event("Normal", "TrialQueued", name, after.message)
    if after.phase is before.phase:
        return None
    if after.phase is TrialPhase.PAUSED:
        return Event("Normal", "TrialPaused", name, f"{after.message}, {metric}={after.objective_value:g}")
    if after.phase is TrialPhase.SUCCEEDED:
        done = f"{metric}={after.objective_value:g} after {after.epochs} epochs"
        return Event(
            "Normal", "TrialSucceeded", name, done + (f" ({after.message})" if after.message else "")
        )
    if after.phase is TrialPhase.FAILED:
        return Event("Warning", "TrialFailed", name, after.message[-500:])
    if before.phase is TrialPhase.RUNNING and after.phase is TrialPhase.PENDING:
        return Event("Warning", "TrialInterrupted", name, after.message)
    return None


def restart_event(name: str, before: NASTrialStatus, after: NASTrialStatus) -> Event | None:
    """The event for a pod replaced while the trial runs (preempted, evicted, crashed): once each."""
    if (after.restarts or 0) > (before.restarts or 0):
        return Event(
            "Warning",
            "TrialRestarted",
            name,
            f"a pod ended early and was replaced ({after.restarts} so far); it resumes its checkpoint",
        )
    return None


@dataclass(frozen=True)
class Observation:
    """One pass's view of the experiment's trials: their records and their current segments."""

    records: list[TrialRecord]
    segments: Mapping[str, SegmentView]
    health: Sequence[Health] = ()


def observe(backend: Backend, spec: NASExperimentSpec, now: str) -> Observation:
    """Every trial advanced from its current segment, each real transition written and announced.

    A finished trial whose segment still runs (the controller died between writing the status and
    stopping the segment) has that segment stopped now.
    """
    metric = spec.objective.metric
    records, segments = [], {}
    for trial in backend.observe():
        status = advance(trial.status, trial.segment, metric, now, trial.epoch_metrics)
        if status != trial.status:
            backend.write_status(trial.name, status)
            for event in (
                transition_event(trial.name, trial.status, status, metric),
                restart_event(trial.name, trial.status, status),
            ):
                if event is not None:
                    backend.send(event)
            if status.phase not in (TrialPhase.PENDING, TrialPhase.RUNNING):
                backend.drop_live_metrics(trial.name)
        if status.phase.finished and trial.segment.active:
            backend.stop_segment(trial.name, trial.segment.ref)
        launched = trial.segment.state is not SegmentState.ABSENT or status.phase is not TrialPhase.PENDING
        records.append(record(trial.spec, status, trial.name, launched, trial.epoch_metrics))
        segments[trial.name] = trial.segment
    return Observation(records, segments, backend.health())
