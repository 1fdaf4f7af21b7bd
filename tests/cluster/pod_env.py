"""A container's argv and environment from its pod spec, as a kubelet would compute them."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

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


Source = Literal["Secret", "ConfigMap"]
# Reads a Secret or ConfigMap of the pod's namespace: its string data (decoded), None if there is none.
ReadSource = Callable[[Source, str], Mapping[str, str] | None]


class ContainerConfigError(Exception):
    """Kubelet's CreateContainerConfigError: some container's env names a Secret or ConfigMap, or a key,
    that is not there (and is not ``optional``). ``problems``: kubelet's message, by container name."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in problems.items()))
        self.problems = dict(problems)


def source_data(obj: Json) -> dict[str, str]:
    """What env can take from a Secret (``data`` base64-decoded, then ``stringData``) or a ConfigMap
    (``data``; kubelet leaves ``binaryData`` out of env)."""
    if obj.get("kind") == "Secret":
        data = {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
        return {**data, **(obj.get("stringData") or {})}
    return dict(obj.get("data") or {})


def _escape(value: str) -> str:
    """A literal for ``value:`` (``$`` doubled), so that expansion gives back exactly ``value``."""
    return value.replace("$", "$$")


class _Missing(Exception):
    """One container's env names a source or key that is not there (the message is kubelet's)."""


def with_sources_resolved(pod: Json, read: ReadSource) -> Json:
    """The pod with its containers' env made plain, as kubelet computes it before creating them:
    ``envFrom`` (``secretRef`` / ``configMapRef``, each key behind ``prefix``) first, then ``env``,
    whose ``secretKeyRef`` / ``configMapKeyRef`` become plain values (later names win). A missing
    ``optional`` source or key sets nothing; any other raises ContainerConfigError with kubelet's
    message. Each source is read once."""
    namespace = pod["metadata"]["namespace"]
    cache: dict[tuple[Source, str], Mapping[str, str] | None] = {}

    def lookup(kind: Source, ref: Json) -> Mapping[str, str] | None:
        key = (kind, ref["name"])
        if key not in cache:
            cache[key] = read(kind, ref["name"])
        if cache[key] is None and not ref.get("optional"):
            raise _Missing(f'{kind.lower()} "{ref["name"]}" not found')
        return cache[key]

    containers, problems = [], {}
    for container in pod["spec"]["containers"]:
        try:
            env = _plain_env(container, namespace, lookup)
        except _Missing as missing:
            problems[container["name"]] = str(missing)
            continue
        containers.append({**{k: v for k, v in container.items() if k != "envFrom"}, "env": env})
    if problems:
        raise ContainerConfigError(problems)
    return {**pod, "spec": {**pod["spec"], "containers": containers}}


def _plain_env(
    container: Json, namespace: str, lookup: Callable[[Source, Json], Mapping[str, str] | None]
) -> list[Json]:
    env: list[Json] = []
    for source in container.get("envFrom") or []:
        kind: Source = "Secret" if "secretRef" in source else "ConfigMap"
        data = lookup(kind, source["secretRef"] if kind == "Secret" else source["configMapRef"]) or {}
        prefix = source.get("prefix", "")
        env += [{"name": prefix + k, "value": _escape(v)} for k, v in sorted(data.items()) if "=" not in k]
    for var in container.get("env") or []:
        value_from = var.get("valueFrom") or {}
        ref = value_from.get("secretKeyRef") or value_from.get("configMapKeyRef")
        if ref is None:
            env.append(var)
            continue
        kind = "Secret" if "secretKeyRef" in value_from else "ConfigMap"
        found = lookup(kind, ref)
        if found is not None and ref["key"] in found:
            env.append({"name": var["name"], "value": _escape(found[ref["key"]])})
        elif found is not None and not ref.get("optional"):
            raise _Missing(f"couldn't find key {ref['key']} in {kind} {namespace}/{ref['name']}")
    return env


def container_env(pod: Json, container: Json, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` plus the container's ``env`` (plain values and ``fieldRef``; others skipped: Secrets and
    ConfigMaps are resolved before, by :func:`with_sources_resolved`)."""
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


def service_account_token_source(pod: Json) -> Json | None:
    """The ``serviceAccountToken`` projection that ServiceAccount admission adds to a pod whose token is
    mounted (``kube-api-access-*``); None when the pod, or its ServiceAccount, turned automounting off.
    Admission's decision, read from the spec, is the one kubelet would act on."""
    for volume in pod["spec"].get("volumes") or []:
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "serviceAccountToken" in source:
                return dict(source["serviceAccountToken"])
    return None


def token_kubeconfig(server: str, ca_pem: bytes, token: str, namespace: str) -> Json:
    """A kubeconfig that authenticates with a ServiceAccount token: what a client in a pod builds from the
    mounted token, CA and namespace (load_incluster_config), as a file the client reads from $KUBECONFIG."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "in-cluster",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": "service-account", "user": {"token": token}}],
        "contexts": [
            {
                "name": "in-cluster",
                "context": {"cluster": "in-cluster", "user": "service-account", "namespace": namespace},
            }
        ],
        "current-context": "in-cluster",
    }
