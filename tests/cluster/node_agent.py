"""A local node agent: a stand-in for kubelet + container runtime.

No container engine can run in the test environment, so this agent registers a Node and runs
the containers of pods bound to it as plain local processes: the container image is ignored,
``command`` + ``args`` run with the pod's env in a per-pod temp dir, and ``PATH`` comes from
the agent (the current venv's scripts resolve).  The termination-message file that kubelet
would mount at ``terminationMessagePath`` is a per-container file whose path the program finds
in ``$KUBENAS_TERMINATION_LOG``.  Pod status is reported as a kubelet would (conditions,
container states, terminated message truncated to 4 KiB).  ``hostPath`` volumes work without a
mount namespace: the agent replaces the mount path by the host path in the container's argv and
env values (enough for programs that take their paths from there, as kubenas-trainer does).
Env from Secrets and ConfigMaps works as in kubelet: ``env[].valueFrom.secretKeyRef`` /
``configMapKeyRef`` and ``envFrom[].secretRef`` / ``configMapRef`` (with ``prefix``, ``optional``),
read from the API server in the pod's namespace when the pod starts.  A missing one (not
``optional``) keeps the pod Pending, its container waiting with reason CreateContainerConfigError
and kubelet's message, and the agent retries (0.5 s, doubling to 4 s) until it appears.  Not
supported: restarts (``OnFailure`` is treated as ``Never``), init/sidecar containers, probes, other
volume kinds (Secret and ConfigMap volumes included), ``resourceFieldRef`` env, starting one
container of a pod while another's env is missing (they start together), ``kubectl logs`` (read
:meth:`NodeAgent.logs` instead).

ServiceAccount tokens: a stand-in for the mounted token. Where ServiceAccount admission gave the pod a
``serviceAccountToken`` projection (its token is automounted: neither the pod nor its ServiceAccount set
``automountServiceAccountToken: false``), the agent asks the TokenRequest API for a token of the pod's
ServiceAccount, bound to the pod (it dies with the pod) with the projection's audience and lifetime,
and gives the containers ``$KUBECONFIG``: a kubeconfig file with that token, the API server's address
and CA and the pod's namespace. So a program authenticates as its ServiceAccount, under RBAC, as in
a real pod (the kubernetes client falls back from in-cluster config to ``$KUBECONFIG``). Pods without
the projection get no credentials at all. A TokenRequest that fails (the ServiceAccount is missing)
keeps the pod Pending and is retried like a missing Secret. The token is not refreshed (kubelet
rotates it at 80 % of its lifetime, about 48 minutes by default: longer than any test).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from .pod_env import (
    POD_IP,
    ContainerConfigError,
    Source,
    service_account_token_source,
    source_data,
    token_kubeconfig,
    with_sources_resolved,
)
from .pod_runner import PodRun
from .pod_status import condition, now
from .workdirs import make_workdir, remove_workdir

Json = dict[str, Any]
log = logging.getLogger(__name__)

DEFAULT_CAPACITY = {"cpu": "16", "memory": "64Gi", "pods": "110", "nvidia.com/gpu": "4"}
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "VIRTUAL_ENV")
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
CONFIG_RETRY = (0.5, 4.0)  # first and longest wait before reading a pod's missing Secret / ConfigMap again


def _json(response: Any) -> Any:
    """The body of a ``_preload_content=False`` response (raw JSON, no model round trip)."""
    return json.loads(response.data)


class NodeAgent:
    """Registers Node ``name`` and runs the pods the scheduler binds to it (see module doc)."""

    def __init__(
        self,
        kubeconfig: Path,
        name: str = "kubenas-node-0",
        capacity: Mapping[str, str] = DEFAULT_CAPACITY,
        labels: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        max_grace: float = 3.0,
        heartbeat: float = 10.0,
    ) -> None:
        self.name = name
        self.capacity = dict(capacity)
        self.labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **(labels or {})}
        self.max_grace = max_grace  # cap on a deleted pod's termination grace period
        self.heartbeat = heartbeat
        self.workdir = make_workdir(f"kubenas-agent-{name}-")
        self.env = self._base_env(env or {})
        self._since = now()  # the node's conditions never change
        self._api = config.new_client_from_config(config_file=str(kubeconfig))
        self._api.configuration.connection_pool_maxsize = 32
        self._core = client.CoreV1Api(self._api)
        self._runs: dict[str, PodRun] = {}  # by pod uid, while the pod exists
        self._starting: dict[str, threading.Event] = {}  # by pod uid, until it runs; set: give up
        self._dirs: dict[str, Path] = {}  # "namespace/name" -> dir of its latest run, kept
        self._deleting: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._watch_loop, name=f"{name} watch", daemon=True),
            threading.Thread(target=self._heartbeat_loop, name=f"{name} heartbeat", daemon=True),
        ]

    # -- public API -------------------------------------------------------------------------

    def __enter__(self) -> NodeAgent:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> NodeAgent:
        """Register the Node (Ready) and start watching for pods bound to it."""
        try:
            self._register()
        except BaseException:
            self.stop()
            raise
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        """Stop watching and kill every pod's processes (the Node object stays)."""
        self._stop.set()
        for t in self._threads:
            if t.is_alive():
                t.join(15)
        with self._lock:
            for cancel in self._starting.values():
                cancel.set()
            killers = [threading.Thread(target=run.kill, args=(1.0,)) for run in self._runs.values()]
        for t in killers:
            t.start()
        for t in killers:
            t.join()
        self._api.close()
        remove_workdir(self.workdir)

    def pod_dir(self, namespace: str, name: str) -> Path | None:
        """The local dir of the newest run of pod ``namespace/name`` (None if never run here)."""
        with self._lock:
            return self._dirs.get(f"{namespace}/{name}")

    def logs(self, namespace: str, name: str) -> dict[str, str]:
        """stdout+stderr of each container of a pod that ran here, by container name."""
        d = self.pod_dir(namespace, name)
        if d is None:
            return {}
        return {p.name.removesuffix(".log"): p.read_text(errors="replace") for p in d.glob("*.log")}

    # -- node -----------------------------------------------------------------------------

    @staticmethod
    def _base_env(extra: Mapping[str, str]) -> dict[str, str]:
        env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
        # The running interpreter's bin dir first, so its venv's console scripts resolve even
        # when the venv was not activated.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        return {**env, **extra}

    def _node_status(self) -> Json:
        conditions = [condition("Ready", True, "KubeletReady")] + [
            condition(kind, False, f"KubeletHasNo{kind}")
            for kind in ("MemoryPressure", "DiskPressure", "PIDPressure")
        ]
        for c in conditions:
            c.update(lastTransitionTime=self._since, lastHeartbeatTime=now())
        return {
            "status": {
                "capacity": self.capacity,
                "allocatable": self.capacity,
                "conditions": conditions,
                "addresses": [
                    {"type": "InternalIP", "address": POD_IP},
                    {"type": "Hostname", "address": self.name},
                ],
                "nodeInfo": {
                    "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(
                        platform.machine(), platform.machine()
                    ),
                    "operatingSystem": "linux",
                    "kubeletVersion": "kubenas-node-agent",
                    "containerRuntimeVersion": "local-process://0",
                    "osImage": platform.platform(),
                    "kernelVersion": platform.release(),
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                    "kubeProxyVersion": "",
                },
            }
        }

    def _register(self) -> None:
        body: Any = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": self.labels},
        }
        try:
            self._core.create_node(body, _preload_content=False)
        except ApiException as e:
            if e.status != 409:
                raise
            self._core.patch_node(self.name, {"metadata": {"labels": self.labels}}, _preload_content=False)
        self._core.patch_node_status(self.name, self._node_status(), _preload_content=False)
        # Admission taints new nodes not-ready; the node-lifecycle controller (not run here: it
        # would want Lease heartbeats) lifts that once the node is Ready, so do it ourselves.
        node = _json(self._core.read_node(self.name, _preload_content=False))
        taints = [t for t in node["spec"].get("taints", []) if t["key"] != NOT_READY_TAINT]
        self._core.patch_node(self.name, {"spec": {"taints": taints}}, _preload_content=False)

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                self._core.patch_node_status(self.name, self._node_status(), _preload_content=False)
            except Exception as e:  # keep beating; the next one may succeed
                log.warning("node %s heartbeat failed: %s", self.name, e)

    # -- pods -----------------------------------------------------------------------------

    def _watch_loop(self) -> None:
        """List + watch pods bound to this node; re-list whenever the watch breaks."""
        selector = f"spec.nodeName={self.name}"
        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._relist(selector)
                stream = watch.Watch().stream(
                    self._core.list_pod_for_all_namespaces,
                    field_selector=selector,
                    resource_version=version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=3,  # short, so that stop() is prompt
                )
                for event in stream:
                    obj = event["raw_object"]
                    if event["type"] == "ERROR":
                        raise RuntimeError(f"watch error: {obj}")
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        self._handle(event["type"], obj)
                    if self._stop.is_set():
                        break
            except ApiException as e:
                if e.status != 410:  # 410 Gone (history compacted): just re-list
                    self._watch_failed(e)
                version = ""
            except Exception as e:
                self._watch_failed(e)
                version = ""

    def _watch_failed(self, error: Exception) -> None:
        if not self._stop.is_set():
            log.warning("node %s: pod watch failed, re-listing: %s", self.name, error)
            self._stop.wait(1.0)

    def _relist(self, selector: str) -> str:
        pods = _json(self._core.list_pod_for_all_namespaces(field_selector=selector, _preload_content=False))
        uids = set()
        for pod in pods["items"]:
            uids.add(pod["metadata"]["uid"])
            self._handle("ADDED", pod)
        with self._lock:
            gone = [run.pod for uid, run in self._runs.items() if uid not in uids]
            for uid in [uid for uid in self._starting if uid not in uids]:
                self._starting.pop(uid).set()
        for pod in gone:  # deleted while we were not watching
            self._handle("DELETED", pod)
        return str(pods["metadata"]["resourceVersion"])

    def _handle(self, kind: str, pod: Json) -> None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            run = self._runs.get(uid)
            ending = kind == "DELETED" or pod["metadata"].get("deletionTimestamp")
            if ending and (cancel := self._starting.pop(uid, None)):
                cancel.set()  # it was waiting for a Secret or ConfigMap
            if kind == "DELETED":
                self._runs.pop(uid, None)
                self._deleting.discard(uid)
                if run:
                    threading.Thread(target=run.kill, args=(0.0,), daemon=True).start()
                return
            if pod["metadata"].get("deletionTimestamp"):
                if uid not in self._deleting:
                    self._deleting.add(uid)
                    threading.Thread(target=self._finish_deletion, args=(pod, run), daemon=True).start()
                return
            if run or uid in self._starting or pod.get("status", {}).get("phase") != "Pending":
                return  # already here, or finished / started by an earlier agent
            cancel = self._starting[uid] = threading.Event()
        name = f"start {pod['metadata']['namespace']}/{pod['metadata']['name']}"
        threading.Thread(target=self._start_pod, args=(pod, cancel), name=name, daemon=True).start()

    def _start_pod(self, pod: Json, cancel: threading.Event) -> None:
        """Like kubelet before it creates the containers: resolve their env from Secrets and
        ConfigMaps, retrying while one is missing (reported as CreateContainerConfigError); then run."""
        meta = pod["metadata"]
        delay, longest = CONFIG_RETRY
        reported: dict[str, str] = {}
        while True:
            try:
                resolved = with_sources_resolved(pod, lambda kind, name: self._read_source(kind, meta, name))
                credentials = self._service_account_env(pod)
                break
            except ContainerConfigError as error:
                if error.problems != reported:
                    self._patch_status(pod, config_error_status(pod, error.problems))
                    reported = error.problems
            if cancel.wait(delay):
                return
            delay = min(2 * delay, longest)
        with self._lock:
            if cancel.is_set() or self._starting.get(meta["uid"]) is not cancel:
                return
            del self._starting[meta["uid"]]
            env = {**self.env, **credentials}
            run = PodRun(resolved, self.workdir, env, lambda body: self._patch_status(pod, body))
            self._runs[meta["uid"]] = run
            self._dirs[run.key] = run.dir
        run.start()

    def _read_source(self, kind: Source, meta: Json, name: str) -> dict[str, str] | None:
        """A Secret's or ConfigMap's data in the pod's namespace (None: not found). Another error is a
        config error too (kubelet's message is the API error's), retried like a missing one."""
        read = (
            self._core.read_namespaced_secret if kind == "Secret" else self._core.read_namespaced_config_map
        )
        try:
            return source_data(_json(read(name, meta["namespace"], _preload_content=False)))
        except ApiException as e:
            if e.status == 404:
                return None
            raise ContainerConfigError({"*": f"reading {kind} {meta['namespace']}/{name}: {e.reason}"}) from e

    def _service_account_env(self, pod: Json) -> dict[str, str]:
        """``KUBECONFIG`` with a TokenRequest token of the pod's ServiceAccount if its token is mounted (see
        the module doc); nothing if not. A failed request is a config error (retried)."""
        source = service_account_token_source(pod)
        if source is None:
            return {}
        meta = pod["metadata"]
        account = pod["spec"].get("serviceAccountName") or "default"
        spec: Json = {
            "expirationSeconds": int(source.get("expirationSeconds") or 3607),
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
        }
        if source.get("audience"):
            spec["audiences"] = [source["audience"]]
        try:
            answer = _json(
                self._core.create_namespaced_service_account_token(
                    account, meta["namespace"], {"spec": spec}, _preload_content=False
                )
            )
        except ApiException as e:
            message = f"requesting a token of serviceaccount {meta['namespace']}/{account}: {e.reason}"
            raise ContainerConfigError({"*": message}) from e
        conf = self._api.configuration
        kubeconfig = token_kubeconfig(
            conf.host, Path(conf.ssl_ca_cert).read_bytes(), answer["status"]["token"], meta["namespace"]
        )
        path = self.workdir / "kubeconfigs" / f"{meta['uid']}.json"
        path.parent.mkdir(exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(kubeconfig))
        return {"KUBECONFIG": str(path)}

    def _finish_deletion(self, pod: Json, run: PodRun | None) -> None:
        """Like kubelet: kill the containers, report their end, then delete with grace 0."""
        meta = pod["metadata"]
        if run:
            grace = meta.get("deletionGracePeriodSeconds")
            run.kill(min(float(30 if grace is None else grace), self.max_grace))
        options = client.V1DeleteOptions(
            grace_period_seconds=0, preconditions=client.V1Preconditions(uid=meta["uid"])
        )
        for _ in range(5):
            try:
                self._core.delete_namespaced_pod(
                    meta["name"], meta["namespace"], body=options, _preload_content=False
                )
                return
            except ApiException as e:
                if e.status in (404, 409):  # gone already / a different pod now has the name
                    return
                log.warning("deleting pod %s/%s failed: %s", meta["namespace"], meta["name"], e)
            if self._stop.wait(1.0):
                return

    def _patch_status(self, pod: Json, body: Json) -> None:
        meta = pod["metadata"]
        try:
            self._core.patch_namespaced_pod_status(
                meta["name"], meta["namespace"], body, _preload_content=False
            )
        except ApiException as e:
            if e.status != 404:  # a pod that is gone needs no status
                log.warning("status of pod %s/%s: %s", meta["namespace"], meta["name"], e)


def config_error_status(pod: Json, problems: Mapping[str, str]) -> Json:
    """Kubelet's status of a pod whose containers cannot be created yet: Pending, each container
    waiting, with CreateContainerConfigError and the message where its env does not resolve
    (``problems`` by container name; ``*``: every container)."""
    names = [c["name"] for c in pod["spec"]["containers"]]
    statuses = []
    for c in pod["spec"]["containers"]:
        message = problems.get(c["name"], problems.get("*"))
        waiting = (
            {"reason": "CreateContainerConfigError", "message": message}
            if message
            else {"reason": "ContainerCreating"}
        )
        statuses.append(
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {"waiting": waiting},
            }
        )
    unready = {
        "reason": "ContainersNotReady",
        "message": f"containers with unready status: [{' '.join(names)}]",
    }
    return {
        "status": {
            "phase": "Pending",
            "startTime": now(),
            "hostIP": POD_IP,
            "hostIPs": [{"ip": POD_IP}],
            "podIP": POD_IP,
            "podIPs": [{"ip": POD_IP}],
            "conditions": [
                condition("PodReadyToStartContainers", True),
                condition("Initialized", True),
                {**condition("ContainersReady", False), **unready},
                {**condition("Ready", False), **unready},
            ],
            "containerStatuses": statuses,
        }
    }
