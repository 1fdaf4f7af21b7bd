"""A container's argv and environment from its pod spec, as a kubelet would compute them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

Json = dict[str, Any]
_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_MAP_FIELD = re.compile(r"metadata\.(labels|annotations)\['(.+)'\]")
POD_IP = "127.0.0.1"


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubelet's ``$(VAR)`` expansion: known names are replaced, ``$$`` escapes a ``$``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _REF.sub(sub, text)


def field_ref(pod: Json, path: str) -> str:
    """Value of a downward-API ``fieldRef.fieldPath`` (the subset a local agent can know)."""
    meta, spec = pod["metadata"], pod["spec"]
    simple = {
        "metadata.name": meta["name"],
        "metadata.namespace": meta["namespace"],
        "metadata.uid": meta["uid"],
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": POD_IP,
        "status.podIP": POD_IP,
    }
    if path in simple:
        return str(simple[path])
    if m := _MAP_FIELD.fullmatch(path):
        return str(meta.get(m.group(1), {}).get(m.group(2), ""))
    raise ValueError(f"unsupported fieldRef {path!r}")


def container_env(pod: Json, container: Json, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` plus the container's ``env`` (plain values and ``fieldRef``; others skipped)."""
    env = dict(base)
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = expand(var["value"] or "", env)
        elif ref := (var.get("valueFrom") or {}).get("fieldRef"):
            env[var["name"]] = field_ref(pod, ref["fieldPath"])
    return env


def container_argv(container: Json, env: Mapping[str, str]) -> list[str]:
    """``command`` + ``args`` with ``$(VAR)`` expanded; the image entrypoint is unknown here."""
    if not container.get("command"):
        raise ValueError(f"container {container['name']!r} has no command (images are ignored)")
    return [expand(a, env) for a in [*container["command"], *(container.get("args") or [])]]


def host_paths(pod: Json, container: Json) -> dict[str, str]:
    """``mountPath -> host path`` of the container's hostPath volume mounts (other kinds are ignored)."""
    volumes = {v["name"]: v["hostPath"]["path"] for v in pod["spec"].get("volumes") or [] if "hostPath" in v}
    return {
        m["mountPath"].rstrip("/"): volumes[m["name"]]
        for m in container.get("volumeMounts") or []
        if m["name"] in volumes
    }


def map_paths(text: str, mounts: Mapping[str, str]) -> str:
    """``text`` with every mount path replaced by its host path: no mount namespace here, so a
    program sees a hostPath volume by being told the host path instead (longest mount first)."""
    for mount in sorted(mounts, key=len, reverse=True):
        text = re.sub(rf"{re.escape(mount)}(?=/|$|\"|\s)", mounts[mount], text)
    return text
