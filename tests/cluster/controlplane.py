"""A real Kubernetes control plane (etcd, apiserver, controller-manager, scheduler) on loopback.

No kubelet and no container runtime: pair it with :class:`tests.cluster.node_agent.NodeAgent`.
"""

from __future__ import annotations

import atexit
import base64
import json
import secrets
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from .binaries import bin_dir as default_bin_dir
from .kubectl import Kubectl
from .procs import spawn, tail, terminate
from .workdirs import make_workdir, remove_workdir

# The controllers the tests rely on: Jobs, ownerReference cascading, the `default`
# ServiceAccount that pod admission requires, namespace deletion, and ResourceQuota usage (quota
# admission refuses objects only once the controller has computed a quota's status).
CONTROLLERS = (
    "job-controller",
    "garbage-collector-controller",
    "serviceaccount-controller",
    "namespace-controller",
    "resourcequota-controller",
)
SERVICE_CIDR = "10.0.0.0/24"


class ControlPlaneError(RuntimeError):
    """The control plane failed to start; the message carries the failing component's log."""


def free_ports(n: int) -> list[int]:
    """``n`` distinct, currently unused TCP ports on 127.0.0.1."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _get(url: str, token: str = "", cafile: Path | None = None) -> tuple[int, str]:
    """GET ``url``; ``(0, error)`` if it cannot connect."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ctx = ssl.create_default_context(cafile=cafile) if cafile else None
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=2.0, context=ctx) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError as e:
        return 0, str(e)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler in a temp work dir.

    Use as a context manager; ``.kubeconfig`` is an admin kubeconfig (static token, group
    ``system:masters``).  Component logs are ``<workdir>/<component>.log``; the work dir is
    removed on :meth:`stop` unless ``$KUBENAS_KEEP_CLUSTER_DIR`` is set.
    """

    def __init__(
        self,
        bin_dir: Path | None = None,
        controllers: Sequence[str] = CONTROLLERS,
        timeout: float = 120.0,
    ) -> None:
        self.bin_dir = bin_dir
        self.controllers = tuple(controllers)
        self.timeout = timeout
        self.workdir = make_workdir("kubenas-cp-")
        self.kubeconfig = self.workdir / "kubeconfig"
        self.ca = self.workdir / "serving.crt"  # the apiserver's self-signed serving cert
        self.token = secrets.token_hex(16)
        self.server = ""
        self._etcd_url = ""
        self.startup_seconds = 0.0
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._argv: dict[str, list[str]] = {}
        self._kubectl: Kubectl | None = None

    # -- public API -------------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this cluster (raises KubectlError if ``check``)."""
        if self._kubectl is None:
            raise RuntimeError("control plane not started")
        return self._kubectl(*args, check=check, input=input, timeout=timeout)

    @property
    def kubectl_bin(self) -> Path:
        """The built kubectl."""
        return (self.bin_dir or default_bin_dir()) / "kubectl"

    def log(self, component: str) -> Path:
        """Path of a component's log file."""
        return self.workdir / f"{component}.log"

    def start(self) -> ControlPlane:
        """Start all components and wait until the API is ready and usable for pods."""
        began = time.monotonic()
        atexit.register(self.stop)
        try:
            self.bin_dir = bins = self.bin_dir or default_bin_dir()
            self._kubectl = Kubectl(self.kubectl_bin, self.kubeconfig)
            etcd_client, etcd_peer, apiserver = free_ports(3)
            self._start_etcd(bins, etcd_client, etcd_peer)
            self._start_apiserver(bins, apiserver)
            self._start_controllers(bins)
            self._wait("kube-apiserver", self._apiserver_ready)
            self._wait("kube-controller-manager", self._default_service_account_exists)
        except BaseException:
            self.stop(keep_workdir=True)
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self, keep_workdir: bool = False) -> None:
        """Kill every component's process group (idempotent) and remove the work dir."""
        atexit.unregister(self.stop)
        for name in reversed(list(self._procs)):
            terminate(self._procs.pop(name), grace=5.0)
        if not keep_workdir:
            remove_workdir(self.workdir)

    # -- components ---------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        self._argv[name] = argv
        self._procs[name] = spawn(argv, self.log(name), cwd=self.workdir)

    def restart(self, component: str, down_seconds: float = 0.0) -> None:
        """Kill one component (e.g. kube-apiserver, etcd), leave it down a while, start it again with
        the same flags and data, and wait until the API answers again (a chaos test's outage)."""
        terminate(self._procs.pop(component), grace=2.0)
        time.sleep(down_seconds)
        self._procs[component] = spawn(self._argv[component], self.log(component), cwd=self.workdir)
        self._wait(component, self._apiserver_ready)

    def _start_etcd(self, bins: Path, client_port: int, peer_port: int) -> None:
        client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
        self._etcd_url = client
        self._spawn(
            "etcd",
            [
                str(bins / "etcd"),
                "--name=default",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--unsafe-no-fsync",  # throwaway data; fsync only slows tests down
                "--log-level=warn",
            ],
        )
        self._wait("etcd", lambda: '"health":"true"' in _get(f"{client}/health")[1])

    def _start_apiserver(self, bins: Path, port: int) -> None:
        self.server = f"https://127.0.0.1:{port}"
        sa_key, tls_key = self.workdir / "sa.key", self.workdir / "serving.key"
        _openssl("genrsa", "-out", str(sa_key), "2048")
        # Self-signed serving cert for 127.0.0.1 that the kubeconfig trusts (so TLS is verified).
        _openssl(
            "req", "-x509", "-nodes", "-days", "3650", "-subj", "/CN=127.0.0.1",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(tls_key), "-out", str(self.ca),
        )  # fmt: skip
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f'{self.token},kubenas-admin,kubenas-admin,"system:masters"\n')
        self._write_kubeconfig()
        self._spawn(
            "kube-apiserver",
            [
                str(bins / "kube-apiserver"),
                f"--etcd-servers={self._etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--tls-cert-file={self.ca}",
                f"--tls-private-key-file={tls_key}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # The apiserver would publish its own address as the `kubernetes` Service's
                # endpoints; loopback addresses are invalid there, so don't reconcile them.
                "--endpoint-reconciler-type=none",
                "--profiling=false",
            ],
        )

    def _start_controllers(self, bins: Path) -> None:
        common = [
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",  # no health/metrics endpoint: nothing to bind, nothing to race
        ]
        self._spawn(
            "kube-controller-manager",
            [
                str(bins / "kube-controller-manager"),
                *common,
                f"--controllers={','.join(self.controllers)}",
            ],
        )
        self._spawn("kube-scheduler", [str(bins / "kube-scheduler"), *common])

    def _write_kubeconfig(self) -> None:
        ca_data = base64.b64encode(self.ca.read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "kubenas", "cluster": {"server": self.server, "certificate-authority-data": ca_data}}
            ],
            "users": [{"name": "kubenas-admin", "user": {"token": self.token}}],
            "contexts": [{"name": "kubenas", "context": {"cluster": "kubenas", "user": "kubenas-admin"}}],
            "current-context": "kubenas",
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2))  # JSON is valid YAML

    # -- readiness ------------------------------------------------------------------------

    def _apiserver_ready(self) -> bool:
        return _get(f"{self.server}/readyz", self.token, self.ca) == (200, "ok")

    def _default_service_account_exists(self) -> bool:
        url = f"{self.server}/api/v1/namespaces/default/serviceaccounts/default"
        return _get(url, self.token, self.ca)[0] == 200

    def _wait(self, blame: str, ready: Callable[[], bool]) -> None:
        """Poll ``ready``; fail fast if a component exits, blame ``blame`` on timeout."""
        deadline = time.monotonic() + self.timeout
        while not ready():
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    self._fail(name, f"exited with status {proc.returncode}")
            if time.monotonic() > deadline:
                self._fail(blame, f"not ready after {self.timeout:.0f}s")
            time.sleep(0.2)

    def _fail(self, name: str, what: str) -> None:
        raise ControlPlaneError(
            f"{name} {what}; work dir {self.workdir}\n--- tail of {self.log(name)} ---\n"
            f"{tail(self.log(name))}"
        )
