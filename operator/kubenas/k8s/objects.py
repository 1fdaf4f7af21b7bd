"""Pure builders of the objects the operator creates; unit-tested without a cluster.

Trial pods are hardened as the restricted Pod Security Standard asks: non-root, all capabilities
dropped, no privilege escalation, seccomp RuntimeDefault, a read-only root filesystem and no
service-account token (trainers never call the API). The trainer writes only under /tmp, an emptyDir:
its working directory (its output, unless a checkpoint volume takes it), $TMPDIR, $HOME and the caches.
"""

from __future__ import annotations

from typing import Any

from kubenas_trainer.spec import TrialSpec

from kubenas.api.experiment import API_VERSION, TrialTemplate
from kubenas.api.outputs import StorageSpec
from kubenas.api.pod import SecurityContext
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
SCRATCH_MOUNT = "/tmp"
SCRATCH_VOLUME = "scratch"
# Where the trainer and its libraries (torch, boto3, matplotlib) write, all on the scratch emptyDir; the
# trainer's own output directory is relative to its working directory, the same emptyDir.
SCRATCH_ENV = {
    "TMPDIR": SCRATCH_MOUNT,
    "HOME": SCRATCH_MOUNT,
    "XDG_CACHE_HOME": f"{SCRATCH_MOUNT}/.cache",
    "TORCH_HOME": f"{SCRATCH_MOUNT}/.cache/torch",
    "MPLCONFIGDIR": f"{SCRATCH_MOUNT}/.config/matplotlib",
    "PYTHONDONTWRITEBYTECODE": "1",
}
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


def pod_security(context: SecurityContext) -> dict[str, Any]:
    """The pod's securityContext: who the trainer runs as, and its seccomp profile."""
    seccomp: dict[str, Any] = {"type": context.seccomp_profile.type}
    if context.seccomp_profile.localhost_profile is not None:
        seccomp["localhostProfile"] = context.seccomp_profile.localhost_profile
    pod: dict[str, Any] = {
        "runAsNonRoot": context.run_as_non_root,
        "runAsUser": context.run_as_user,
        "runAsGroup": context.run_as_group,
        "seccompProfile": seccomp,
    }
    if context.fs_group is not None:
        pod["fsGroup"] = context.fs_group
    return pod


def container_security(context: SecurityContext) -> dict[str, Any]:
    """The trainer container's securityContext: no capability, no privilege escalation."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": context.read_only_root_filesystem,
    }


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
    checkpoint volume, or in object storage (whose credentials come from storage.secretName).
    With template.queueName the Job is created suspended, for Kueue to admit (unsuspend); the operator
    never changes a Job it created, so it never undoes an admission."""
    labels = trial_labels(experiment, name, index)
    own = {e.name for e in template.env}
    container: dict[str, Any] = {
        "name": TRAINER_CONTAINER,
        "image": template.image,
        "command": ["kubenas-trainer"],
        "workingDir": SCRATCH_MOUNT,
        "env": [
            *({"name": k, "value": v} for k, v in SCRATCH_ENV.items() if k not in own),
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
        "securityContext": container_security(template.security_context),
        "volumeMounts": [{"name": SCRATCH_VOLUME, "mountPath": SCRATCH_MOUNT}],
    }
    if template.image_pull_policy:
        container["imagePullPolicy"] = template.image_pull_policy
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "securityContext": pod_security(template.security_context),
        "automountServiceAccountToken": False,
        "volumes": [{"name": SCRATCH_VOLUME, "emptyDir": {}}],
    }
    if template.checkpoint_volume is not None:
        container["args"] = ["--output", trial_output(namespace, experiment, name), "--resume"]
        container["volumeMounts"].append({"name": CHECKPOINT_VOLUME, "mountPath": CHECKPOINT_MOUNT})
        pod_spec["volumes"].append({"name": CHECKPOINT_VOLUME, **template.checkpoint_volume})
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
    if template.priority_class_name:
        pod_spec["priorityClassName"] = template.priority_class_name
    job_spec: dict[str, Any] = {
        "backoffLimit": template.backoff_limit,
        "podFailurePolicy": POD_FAILURE_POLICY,
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if template.active_deadline_seconds:
        job_spec["activeDeadlineSeconds"] = template.active_deadline_seconds
    if template.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = template.ttl_seconds_after_finished
    job_labels = dict(labels)
    if template.queue_name:
        job_labels[QUEUE_LABEL] = template.queue_name
        job_spec["suspend"] = True
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": segment or name,
            "namespace": namespace,
            "labels": job_labels,
            "ownerReferences": [owner_reference(API_VERSION, "NASTrial", name, trial_uid)],
        },
        "spec": job_spec,
    }
