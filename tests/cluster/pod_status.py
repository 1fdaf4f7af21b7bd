"""Pod status documents shaped like the ones a kubelet writes (strategic-merge patch bodies)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .pod_env import POD_IP

Json = dict[str, Any]


def now() -> str:
    """RFC 3339 timestamp, second precision, as the API serializes it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(kind: str, ok: bool, reason: str = "") -> Json:
    cond: Json = {"type": kind, "status": "True" if ok else "False", "lastTransitionTime": now()}
    if reason:
        cond["reason"] = reason
    return cond


@dataclass
class ContainerResult:
    """How one container ended."""

    exit_code: int
    message: str
    started_at: str
    finished_at: str
    reason: str = ""  # default: Completed / Error by exit code


def _container(container: Json, uid: str, state: Json, ready: bool) -> Json:
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "containerID": f"kubenas-agent://{uid}/{container['name']}",
        "ready": ready,
        "started": ready,
        "restartCount": 0,
        "state": state,
    }


def running(pod: Json, started_at: str) -> Json:
    """Phase Running, every container running and ready (there are no probes)."""
    uid = pod["metadata"]["uid"]
    return {
        "status": {
            "phase": "Running",
            "startTime": started_at,
            "hostIP": POD_IP,
            "hostIPs": [{"ip": POD_IP}],
            "podIP": POD_IP,
            "podIPs": [{"ip": POD_IP}],
            "conditions": [
                condition("PodReadyToStartContainers", True),
                condition("Initialized", True),
                condition("ContainersReady", True),
                condition("Ready", True),  # PodScheduled: already set by the scheduler's binding
            ],
            "containerStatuses": [
                _container(c, uid, {"running": {"startedAt": started_at}}, True)
                for c in pod["spec"]["containers"]
            ],
        }
    }


def terminated(pod: Json, start_time: str, results: dict[str, ContainerResult]) -> Json:
    """Phase Succeeded if every container exited 0, else Failed (no restarts: restartPolicy
    OnFailure is treated as Never)."""
    uid = pod["metadata"]["uid"]
    statuses = []
    for c in pod["spec"]["containers"]:
        r = results[c["name"]]
        state = {
            "terminated": {
                "exitCode": r.exit_code,
                "reason": r.reason or ("Completed" if r.exit_code == 0 else "Error"),
                "message": r.message,
                "startedAt": r.started_at,
                "finishedAt": r.finished_at,
                "containerID": f"kubenas-agent://{uid}/{c['name']}",
            }
        }
        statuses.append(_container(c, uid, state, False))
    ok = all(r.exit_code == 0 for r in results.values())
    return {
        "status": {
            "phase": "Succeeded" if ok else "Failed",
            "startTime": start_time,
            "conditions": [
                condition("PodReadyToStartContainers", False),
                condition("ContainersReady", False, "PodCompleted"),
                condition("Ready", False, "PodCompleted"),
            ],
            "containerStatuses": statuses,
        }
    }
