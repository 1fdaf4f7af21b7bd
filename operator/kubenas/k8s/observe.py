"""Pure observation: a trial's status from its NASTrial, Job and pods as the API server shows them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubenas.api.status import NASTrialStatus, TrialPhase
from kubenas.k8s.labels import TRAINER_CONTAINER
from kubenas.trials import parse_result, status_from_result

Obj = Mapping[str, Any]


def _condition(job: Obj, type_: str) -> Obj | None:
    for condition in job.get("status", {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return dict(condition)
    return None


def _terminated(pod: Obj) -> Obj | None:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        if status.get("name") == TRAINER_CONTAINER:
            return (status.get("state") or {}).get("terminated")
    return None


def _termination_message(pods: Sequence[Obj]) -> str:
    """The newest terminated trainer container's message."""
    ended = [(t.get("finishedAt") or "", t.get("message") or "") for p in pods if (t := _terminated(p))]
    return max(ended)[1] if ended else ""


def observe_trial(
    name: str, current: NASTrialStatus, job: Obj | None, pods: Sequence[Obj], objective: str, now: str
) -> NASTrialStatus:
    """The trial's status now. A finished trial never changes again."""
    if current.phase.finished:
        return current
    if job is None:
        return current
    start = current.start_time or job.get("status", {}).get("startTime")
    failed = _condition(job, "Failed")
    if _condition(job, "Complete") or failed:
        message = _termination_message(pods)
        if not message and failed is not None:
            message = f"Job failed: {failed.get('reason', '')}: {failed.get('message', '')}"
        return status_from_result(parse_result(message, name), objective, now, start)
    running = any(p.get("status", {}).get("phase") == "Running" for p in pods)
    phase = TrialPhase.RUNNING if running else TrialPhase.PENDING
    return current.model_copy(update={"phase": phase, "start_time": start})
