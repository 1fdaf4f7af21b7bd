"""What a trial template puts into its pods (resources, tolerations, environment, node selector, the
checkpoint volume), checked as Kubernetes checks a pod: both by the models and, through the CRD, by the
API server at apply time, so that a spec it accepts never has its Jobs refused later."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from kubenas_trainer.spec import CamelModel
from pydantic import Field, JsonValue, ValidationError, field_validator, model_validator

from kubenas.api.errors import format_validation_error
from kubenas.api.kube import (
    DNS_SUBDOMAIN,
    STANDARD_RESOURCES,
    cel_label_value,
    cel_qualified_name,
    cel_quantity,
    cel_resource_name,
    is_extended_resource,
    is_label_value,
    is_qualified_name,
    parse_quantity,
    rule,
)

# A resource quantity: an integer, or a string such as "500m" or "2Gi".
Quantity = int | Annotated[str, Field(max_length=64)]
IMAGE_RULE = "must not begin or end with whitespace"

_LABEL_VALUE = "a label value: at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric"
_QUALIFIED_NAME = (
    "a qualified name: an optional DNS subdomain and '/', then at most 63 letters, digits, '-', '_' or '.'"
)


class Toleration(CamelModel):
    """A toleration of trial pods, checked as Kubernetes checks a pod's."""

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                rule(
                    f"!has(self.key) || self.key == '' || {cel_qualified_name('self.key')}",
                    f"must be {_QUALIFIED_NAME}",
                    ".key",
                ),
                rule(
                    "has(self.key) && self.key != '' || has(self.operator) && self.operator == 'Exists'",
                    "must be Exists when key is empty (a toleration of every taint)",
                    ".operator",
                ),
                rule(
                    "!has(self.tolerationSeconds) || has(self.effect) && self.effect == 'NoExecute'",
                    "must be NoExecute when tolerationSeconds is set",
                    ".effect",
                ),
                rule(
                    "!has(self.value) || self.value == '' || !has(self.operator) "
                    "|| self.operator != 'Exists'",
                    "must be empty with operator Exists",
                    ".value",
                ),
                rule(
                    f"!has(self.value) || {cel_label_value('self.value')}",
                    f"must be {_LABEL_VALUE}",
                    ".value",
                ),
            ]
        }
    }

    key: str | None = Field(
        default=None,
        max_length=317,
        description="The taint key tolerated; empty (with Exists) means every key.",
    )
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="How the key relates to the value (default: Equal)."
    )
    value: str | None = Field(
        default=None, max_length=63, description="The taint value tolerated (empty with Exists)."
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="The taint effect tolerated (default: every effect)."
    )
    toleration_seconds: int | None = Field(
        default=None,
        description="With NoExecute: seconds the pod stays bound after the taint appears (default: forever).",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.key and not is_qualified_name(self.key):
            raise ValueError(f"key: must be {_QUALIFIED_NAME} (key={self.key!r})")
        if not self.key and self.operator != "Exists":
            raise ValueError(f"operator: must be Exists when key is empty (operator={self.operator})")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError(
                f"effect: must be NoExecute when tolerationSeconds is set (effect={self.effect})"
            )
        if self.value and self.operator == "Exists":
            raise ValueError(f"value: must be empty with operator Exists (value={self.value!r})")
        if self.value and not is_label_value(self.value):
            raise ValueError(f"value: must be {_LABEL_VALUE} (value={self.value!r})")
        return self


class EnvVar(CamelModel):
    """An environment variable of the trainer."""

    name: str = Field(min_length=1, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", description="Variable name.")
    value: str = Field(default="", description="Variable value.")


_RESOURCE_NAME = (
    "a container resource: cpu, memory, ephemeral-storage or an extended resource <domain>/<name>"
)
_QUANTITY = "a non-negative quantity, e.g. 500m, 2Gi or 4"
_AMOUNTS = (
    "cpu in cores (500m is half a core), memory and ephemeral-storage in bytes (2Gi, 512M), "
    "an extended resource <domain>/<name> (nvidia.com/gpu) in whole units"
)
# Written in digits: the API server's CEL calls 1000m no integer, though a pod would take it.
_EXTENDED_WHOLE = "an extended resource <domain>/<name> must be a whole number written in digits, e.g. 1"
_EXTENDED_LIMIT = "an extended resource <domain>/<name> that is requested needs a limit equal to the request"


def _resource_rules(kind: str) -> list[JsonValue]:
    field = f"self.{kind}"
    value = f"{field}[k]"
    return [
        rule(
            f"!has({field}) || {field}.all(k, {cel_resource_name('k')})",
            f"every key must name {_RESOURCE_NAME}",
            f".{kind}",
        ),
        rule(
            f"!has({field}) || {field}.all(k, {cel_quantity(value)})",
            f"every value must be {_QUANTITY}",
            f".{kind}",
        ),
        rule(
            f"!has({field}) || {field}.all(k, !k.contains('/') || type({value}) == int "
            f"|| string({value}).matches('^[0-9]+$'))",
            _EXTENDED_WHOLE,
            f".{kind}",
        ),
    ]


def _both(name: str) -> str:
    return f"isQuantity(string(self.requests[{name}])) && isQuantity(string(self.limits[{name}]))"


def _compare(name: str) -> str:
    return f"quantity(string(self.requests[{name}])).compareTo(quantity(string(self.limits[{name}])))"


class Resources(CamelModel):
    """Requests and limits of a trial's container, checked as Kubernetes checks a pod's."""

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                *_resource_rules("requests"),
                *_resource_rules("limits"),
                rule(
                    "!has(self.requests) || !has(self.limits) || self.requests.all(k, !(k in self.limits) "
                    f"|| !({_both('k')}) || {_compare('k')} <= 0)",
                    "must be <= limits, resource by resource",
                    ".requests",
                ),
                rule(
                    "!has(self.requests) || self.requests.all(k, !k.contains('/') || has(self.limits) "
                    f"&& k in self.limits && (!({_both('k')}) || {_compare('k')} == 0))",
                    _EXTENDED_LIMIT,
                    ".limits",
                ),
            ]
        }
    }

    requests: dict[str, Quantity] = Field(
        default_factory=dict, max_length=32, description=f"Resource requests of a trial: {_AMOUNTS}."
    )
    limits: dict[str, Quantity] = Field(
        default_factory=dict, max_length=32, description=f"Resource limits of a trial: {_AMOUNTS}."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        for kind, amounts in (("requests", self.requests), ("limits", self.limits)):
            for name, amount in amounts.items():
                if name not in STANDARD_RESOURCES and not is_extended_resource(name):
                    raise ValueError(f"{kind}: every key must name {_RESOURCE_NAME} (got {name!r})")
                value = parse_quantity(amount)
                if value is None or value < 0:
                    raise ValueError(f"{kind}: every value must be {_QUANTITY} ({name}={amount!r})")
                if "/" in name and not (isinstance(amount, int) or re.fullmatch("[0-9]+", amount)):
                    raise ValueError(f"{kind}: {_EXTENDED_WHOLE} ({name}={amount})")
        for name, amount in self.requests.items():
            request, limit = parse_quantity(amount), parse_quantity(self.limits.get(name, "-1"))
            if limit is not None and limit >= 0 and request is not None and request > limit:
                raise ValueError(
                    f"requests: must be <= limits, resource by resource ({name}: requests={amount}, "
                    f"limits={self.limits[name]})"
                )
            if "/" in name and request != limit:
                raise ValueError(
                    f"limits: {_EXTENDED_LIMIT} ({name}: requests={amount}, limits={self.limits.get(name)})"
                )
        return self


# Extended resources that are GPUs, for the GPU-hours budget: whole GPUs (nvidia.com/gpu, amd.com/gpu,
# gpu.intel.com/i915), NVIDIA MIG slices (nvidia.com/mig-1g.10gb) and time-sliced shares renamed by the
# device plugin (nvidia.com/gpu.shared). A slice or a share counts as one GPU: what the trial holds.
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu", "gpu.intel.com/i915")
GPU_PREFIXES = ("nvidia.com/mig-", "nvidia.com/gpu.")


def is_gpu(resource: str) -> bool:
    return resource in GPU_RESOURCES or resource.startswith(GPU_PREFIXES)


def gpus(resources: Resources) -> int:
    """GPUs one trial holds: the limits of its GPU resources (an extended resource's request equals its
    limit), whole GPUs, MIG slices and time-sliced shares alike."""
    return sum(int(parse_quantity(v) or 0) for k, v in resources.limits.items() if is_gpu(k))


MAX_ID = 2**31 - 1  # user and group ids, as Kubernetes bounds them


class SeccompProfile(CamelModel):
    """The seccomp profile of trial pods, checked as Kubernetes checks a pod's."""

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                rule(
                    "(has(self.type) && self.type == 'Localhost') == has(self.localhostProfile)",
                    "must be set with type Localhost, and only then",
                    ".localhostProfile",
                )
            ]
        }
    }

    type: Literal["RuntimeDefault", "Localhost", "Unconfined"] = Field(
        default="RuntimeDefault",
        description="Which profile: the container runtime's own, a file on the node, or none.",
    )
    localhost_profile: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="With type Localhost: the profile's path, relative to the kubelet's seccomp directory.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.type == "Localhost") != (self.localhost_profile is not None):
            raise ValueError(
                f"localhostProfile: must be set with type Localhost, and only then (type={self.type})"
            )
        return self


_ROOT_RULE = "must not be 0 with runAsNonRoot true (the kubelet would refuse to start the container)"


class SecurityContext(CamelModel):
    """How trial pods run: hardened by default (non-root, read-only root filesystem, the runtime's seccomp
    profile; always all capabilities dropped and no privilege escalation). The trainer writes only
    under /tmp, an emptyDir."""

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                rule(
                    "!has(self.runAsUser) || self.runAsUser != 0 "
                    "|| has(self.runAsNonRoot) && !self.runAsNonRoot",
                    _ROOT_RULE,
                    ".runAsUser",
                )
            ]
        }
    }

    run_as_non_root: bool = Field(
        default=True, description="The kubelet refuses to start the trainer as root (uid 0)."
    )
    run_as_user: int = Field(
        default=10001, ge=0, le=MAX_ID, description="The user id the trainer runs as (overrides the image's)."
    )
    run_as_group: int = Field(default=10001, ge=0, le=MAX_ID, description="The trainer's primary group id.")
    fs_group: int | None = Field(
        default=10001,
        ge=0,
        le=MAX_ID,
        description="A supplementary group that owns the pod's volumes (the checkpoint volume becomes "
        "writable to the trainer).",
    )
    read_only_root_filesystem: bool = Field(
        default=True, description="The container's root filesystem is read-only; /tmp stays writable."
    )
    seccomp_profile: SeccompProfile = Field(
        default=SeccompProfile(), description="The seccomp profile (default RuntimeDefault)."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.run_as_user == 0 and self.run_as_non_root:
            raise ValueError(f"runAsUser: {_ROOT_RULE}")
        return self


# Every volume source of a pod, as Kubernetes spells it, with the fields it requires (without them the
# API server, or its Python client before that, refuses the Job).
VOLUME_SOURCES: dict[str, tuple[str, ...]] = {
    "awsElasticBlockStore": ("volumeID",),
    "azureDisk": ("diskName", "diskURI"),
    "azureFile": ("secretName", "shareName"),
    "cephfs": ("monitors",),
    "cinder": ("volumeID",),
    "configMap": (),
    "csi": ("driver",),
    "downwardAPI": (),
    "emptyDir": (),
    "ephemeral": (),
    "fc": (),
    "flexVolume": ("driver",),
    "flocker": (),
    "gcePersistentDisk": ("pdName",),
    "gitRepo": ("repository",),
    "glusterfs": ("endpoints", "path"),
    "hostPath": ("path",),
    "image": (),
    "iscsi": ("iqn", "lun", "targetPortal"),
    "nfs": ("path", "server"),
    "persistentVolumeClaim": ("claimName",),
    "photonPersistentDisk": ("pdID",),
    "portworxVolume": ("volumeID",),
    "projected": (),
    "quobyte": ("registry", "volume"),
    "rbd": ("image", "monitors"),
    "scaleIO": ("gateway", "secretRef", "system"),
    "secret": (),
    "storageos": (),
    "vsphereVolume": ("volumePath",),
}
_ONE_VOLUME_SOURCE = (
    "must be one volume source, e.g. {persistentVolumeClaim: {claimName: ...}} or {hostPath: {path: ...}}"
)


class PersistentVolumeClaimSource(CamelModel):
    """A PersistentVolumeClaim in the experiment's namespace (ReadWriteMany when trials run on several
    nodes)."""

    claim_name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN, description="Name of the claim."
    )
    read_only: bool | None = Field(default=None, description="Mount read-only (default false).")


class HostPathSource(CamelModel):
    """A directory of the node (single-node clusters)."""

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                rule("!self.path.split('/').exists(p, p == '..')", "must not contain '..'", ".path")
            ]
        }
    }

    path: str = Field(min_length=1, max_length=4096, description="The directory on the node.")
    type: (
        Literal[
            "",
            "DirectoryOrCreate",
            "Directory",
            "FileOrCreate",
            "File",
            "Socket",
            "CharDevice",
            "BlockDevice",
        ]
        | None
    ) = Field(default=None, description='What must be at path (default "": no check).')

    @field_validator("path")
    @classmethod
    def _no_backsteps(cls, path: str) -> str:
        if ".." in path.split("/"):
            raise ValueError(f"must not contain '..' (path={path!r})")
        return path


class EmptyDirSource(CamelModel):
    """A directory that lives as long as the pod (a checkpoint there does not outlive the Job)."""

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                rule(
                    f"!has(self.sizeLimit) || {cel_quantity('self.sizeLimit')}",
                    f"must be {_QUANTITY}",
                    ".sizeLimit",
                )
            ]
        }
    }

    medium: Literal["", "Memory", "HugePages"] | None = Field(
        default=None, description='Storage medium (default "": the node\'s disk).'
    )
    size_limit: Quantity | None = Field(
        default=None, description="Size limit in bytes, a quantity such as 1Gi (default: none)."
    )

    @field_validator("size_limit")
    @classmethod
    def _quantity(cls, limit: int | str | None) -> int | str | None:
        value = parse_quantity(limit) if limit is not None else 0
        if value is None or value < 0:
            raise ValueError(f"must be {_QUANTITY} (sizeLimit={limit!r})")
        return limit


class NFSSource(CamelModel):
    """An NFS export."""

    server: str = Field(min_length=1, description="Host name or IP address of the NFS server.")
    path: str = Field(min_length=1, pattern="^/", description="The exported path, absolute.")
    read_only: bool | None = Field(default=None, description="Mount read-only (default false).")


# The volume sources whose settings kubenas checks as Kubernetes would (the others: only that their
# required fields are there).
_CHECKED_SOURCES: dict[str, type[CamelModel]] = {
    "persistentVolumeClaim": PersistentVolumeClaimSource,
    "hostPath": HostPathSource,
    "emptyDir": EmptyDirSource,
    "nfs": NFSSource,
}


def _source_schema(source: str) -> dict[str, JsonValue]:
    if source in _CHECKED_SOURCES:
        return _CHECKED_SOURCES[source].model_json_schema(by_alias=True)
    required = VOLUME_SOURCES[source]
    needs = f" (requires {', '.join(required)})" if required else ""
    schema: dict[str, JsonValue] = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "description": f"A {source} volume source, with the fields a pod's volume takes{needs}.",
    }
    if required:
        schema["required"] = list(required)
    return schema


VOLUME_SCHEMA: dict[str, JsonValue] = {
    "properties": {source: _source_schema(source) for source in VOLUME_SOURCES},
    "x-kubernetes-validations": [
        rule(
            "[" + ", ".join(f"has(self.{k})" for k in VOLUME_SOURCES) + "].filter(x, x).size() == 1",
            _ONE_VOLUME_SOURCE,
        )
    ],
}


def check_volume(volume: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint volume: one volume source, whose settings are checked where kubenas knows them."""
    if len(volume) != 1 or not set(volume) <= set(VOLUME_SOURCES):
        raise ValueError(f"{_ONE_VOLUME_SOURCE} (got {', '.join(sorted(volume)) or 'none'})")
    for source, settings in volume.items():
        if not isinstance(settings, dict):
            raise ValueError(f"{source}: must be a mapping, the volume source's settings")
        if source in _CHECKED_SOURCES:
            try:
                _CHECKED_SOURCES[source].model_validate(settings, strict=True)
            except ValidationError as error:
                raise ValueError(f"{source}.{'; '.join(format_validation_error(error))}") from None
        missing = [key for key in VOLUME_SOURCES[source] if key not in settings]
        if missing:
            raise ValueError(f"{source}.{missing[0]}: Field required")
    return volume


_LABELS = "every key must be a label key and every value a label value"
LABELS_RULE = rule(
    f"self.all(k, {cel_qualified_name('k')} && {cel_label_value('self[k]')})",
    _LABELS,
)


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    for key, value in labels.items():
        if not is_qualified_name(key) or not is_label_value(value):
            raise ValueError(
                f"every key must be a label key and every value a label value (got {key!r}: {value!r})"
            )
    return labels
