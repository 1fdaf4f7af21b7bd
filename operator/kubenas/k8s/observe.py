"""Pure observation of a trial's current segment from its Job and pods as the API server shows them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubenas.engine.observe import SegmentState, SegmentView, parse_result
from kubenas.k8s.labels import TRAINER_CONTAINER

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


def job_ended(job: Obj) -> bool:
    return bool(_condition(job, "Complete") or _condition(job, "Failed"))


def segment_view(trial: str, job: Obj | None, pods: Sequence[Obj]) -> SegmentView:
    """What the Job running one segment of `trial` shows: absent, queued (suspended, awaiting admission),
    pending, running, or ended with the result its pod reported (its termination message, or why the
    Job failed)."""
    if job is None:
        return SegmentView()
    ref = job["metadata"]["name"]
    start = job.get("status", {}).get("startTime")
    restarts = int(job.get("status", {}).get("failed") or 0)  # pods retried (POD_FAILURE_POLICY)
    failed = _condition(job, "Failed")
    complete = _condition(job, "Complete")
    if complete or failed:
        message = _termination_message(pods)
        if not message and failed is not None:
            message = f"Job failed: {failed.get('reason', '')}: {failed.get('message', '')}"
        ended = job.get("status", {}).get("completionTime") or (complete or failed or {}).get(
            "lastTransitionTime"
        )
        return SegmentView(SegmentState.ENDED, ref, parse_result(message, trial), start, ended, restarts)
    if (job.get("spec") or {}).get("suspend"):  # waits for admission (Kueue): pods, if any, are going
        return SegmentView(SegmentState.QUEUED, ref, restarts=restarts)
    # A pod that succeeded still counts as running until its Job says Complete (the Job controller
    # takes about a second): read as pending, the trial would seem interrupted on the way to its end.
    running = any(p.get("status", {}).get("phase") in ("Running", "Succeeded") for p in pods)
    state = SegmentState.RUNNING if running else SegmentState.PENDING
    return SegmentView(state, ref, start_time=start, restarts=restarts)
