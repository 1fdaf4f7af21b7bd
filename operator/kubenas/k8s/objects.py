"""Pure builders of the objects the operator creates; unit-tested without a cluster."""

from __future__ import annotations

from typing import Any

from kubenas_trainer.spec import TrialSpec

from kubenas.api.experiment import API_VERSION, TrialTemplate
from kubenas.api.outputs import StorageSpec
from kubenas.api.status import NASTrialSpec
from kubenas.k8s.labels import EXPERIMENT_LABEL, INDEX_LABEL, MANAGED_BY, TRAINER_CONTAINER, TRIAL_LABEL


def owner_reference(api_version: str, kind: str, name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def trial_labels(experiment: str, name: str, index: int) -> dict[str, str]:
    return {**MANAGED_BY, EXPERIMENT_LABEL: experiment, TRIAL_LABEL: name, INDEX_LABEL: str(index)}


def nastrial(name: str, namespace: str, experiment_uid: str, spec: NASTrialSpec) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "NASTrial",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": trial_labels(spec.experiment, name, spec.index),
            "ownerReferences": [
                owner_reference(API_VERSION, "NASExperiment", spec.experiment, experiment_uid)
            ],
        },
        "spec": spec.to_dict(),
    }


# A pod the trainer ended itself is final: exit 1 (training failed) or 2 (unusable spec or data) fail the
# Job at once, as another pod would answer the same. A pod preempted, evicted or crashed is retried, counted
# against backoffLimit; its trainer resumes its checkpoint (--resume), so no epoch is trained twice.
POD_FAILURE_POLICY = {
    "rules": [
        {"action": "Count", "onPodConditions": [{"type": "DisruptionTarget"}]},
        {
            "action": "FailJob",
            "onExitCodes": {"containerName": TRAINER_CONTAINER, "operator": "In", "values": [1, 2]},
        },
    ]
}
CHECKPOINT_MOUNT = "/var/lib/kubenas"
CHECKPOINT_VOLUME = "checkpoints"


def job_name(trial: str, epochs_done: int | None) -> str:
    """One Job per segment of a trial: `<trial>`, then `<trial>-e<epochs>` for a continuation from
    a pause (an ASHA promotion), so a finished segment's Job is never mistaken for the next one."""
    return f"{trial}-e{epochs_done}" if epochs_done else trial


def trial_output(namespace: str, experiment: str, trial: str) -> str:
    """Where a trial writes its output, checkpoint included, on the checkpoint volume."""
    return f"{CHECKPOINT_MOUNT}/{namespace}/{experiment}/{trial}"


def trial_job(
    name: str,
    namespace: str,
    trial_uid: str,
    trial: TrialSpec,
    index: int,
    experiment: str,
    template: TrialTemplate,
    segment: str | None = None,
    storage: StorageSpec | None = None,
) -> dict[str, Any]:
    """The Job that trains one trial (or one segment of it, named `segment`); its pod reports the
    result as its termination message. The trainer resumes its own checkpoint when one exists: on the
    checkpoint volume, or in object storage (whose credentials come from storage.secretName)."""
    labels = trial_labels(experiment, name, index)
    container: dict[str, Any] = {
        "name": TRAINER_CONTAINER,
        "image": template.image,
        "command": ["kubenas-trainer"],
        "env": [
            {"name": "KUBENAS_TRIAL_NAME", "value": name},
            {"name": "KUBENAS_TRIAL_SPEC", "value": trial.model_dump_json(by_alias=True, exclude_none=True)},
            *({"name": e.name, "value": e.value} for e in template.env),
        ],
        "resources": {
            "requests": {k: str(v) for k, v in template.resources.requests.items()},
            "limits": {k: str(v) for k, v in template.resources.limits.items()},
        },
        "terminationMessagePath": "/dev/termination-log",
        # If the trainer dies before reporting (e.g. OOM-killed), the log tail becomes the message.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if template.image_pull_policy:
        container["imagePullPolicy"] = template.image_pull_policy
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if template.checkpoint_volume is not None:
        container["args"] = ["--output", trial_output(namespace, experiment, name), "--resume"]
        container["volumeMounts"] = [{"name": CHECKPOINT_VOLUME, "mountPath": CHECKPOINT_MOUNT}]
        pod_spec["volumes"] = [{"name": CHECKPOINT_VOLUME, **template.checkpoint_volume}]
    elif storage is not None:
        container["args"] = ["--resume"]  # from storage: the trial spec names where
    if storage is not None and storage.secret_name:
        container["envFrom"] = [{"secretRef": {"name": storage.secret_name}}]
    if template.node_selector:
        pod_spec["nodeSelector"] = dict(template.node_selector)
    if template.tolerations:
        pod_spec["tolerations"] = [t.to_dict() for t in template.tolerations]
    if template.service_account_name:
        pod_spec["serviceAccountName"] = template.service_account_name
    job_spec: dict[str, Any] = {
        "backoffLimit": template.backoff_limit,
        "podFailurePolicy": POD_FAILURE_POLICY,
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if template.active_deadline_seconds:
        job_spec["activeDeadlineSeconds"] = template.active_deadline_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": segment or name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(API_VERSION, "NASTrial", name, trial_uid)],
        },
        "spec": job_spec,
    }
