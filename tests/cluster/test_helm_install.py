"""`helm install` and `helm test` of the chart on the real control plane (RBAC on, ServiceAccount tokens
signed): the deployment controller creates the operator's pod from the chart's Deployment and the node
agent runs the chart's command and args, authenticated as the chart's ServiceAccount (a TokenRequest
token, see node_agent). `kubectl auth can-i` then checks each ServiceAccount's rights.

One replica: the node agent runs every pod in this machine's one network namespace, where two replicas
would bind the same liveness and metrics ports (the two-replica Lease is tested in test_ha.py).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.chart import CHART, helm

from .conftest import wait_for
from .controlplane import CONTROLLERS, ControlPlane, free_ports
from .fixtures import Cluster
from .node_agent import NodeAgent

pytestmark = pytest.mark.cluster

RELEASE, NAMESPACE, WATCHED, OTHER = "r", "kubenas-system", "team-a", "elsewhere"
OPERATOR = f"system:serviceaccount:{NAMESPACE}:{RELEASE}-operator"
TRIAL = f"system:serviceaccount:{WATCHED}:{RELEASE}-trial"
LEASE = f"{RELEASE}-kubenas"


@pytest.fixture(scope="module")
def helm_kube() -> Iterator[Cluster]:
    """A control plane that also runs the Deployment and ReplicaSet controllers, and a node agent."""
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    controllers = (*CONTROLLERS, "deployment-controller", "replicaset-controller")
    with ControlPlane(controllers=controllers) as cp, NodeAgent(cp.kubeconfig) as agent:
        yield Cluster(cp.kubeconfig, cp.kubectl_bin, agent, cp)


def kube_helm(kube: Cluster, *args: str, check: bool = True) -> Any:
    return helm(*args, "--kubeconfig", str(kube.kubeconfig), check=check)


def lease_holder(kube: Cluster) -> str:
    done = kube.kubectl("get", "lease", LEASE, "-n", NAMESPACE, "-o", "json", check=False)
    return str(json.loads(done.stdout)["spec"].get("holderIdentity") or "") if done.returncode == 0 else ""


def healthz(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def operator_pods(kube: Cluster) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=operator"
    out = kube.kubectl("get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "json").stdout
    return list(json.loads(out)["items"])


def diagnose(kube: Cluster) -> str:
    assert kube.agent is not None
    logs = [kube.agent.logs(NAMESPACE, p["metadata"]["name"]) for p in operator_pods(kube)]
    pods = kube.kubectl("get", "pods", "-A", "-o", "wide", check=False).stdout
    return f"{pods}\n" + "\n".join(str(log)[-6000:] for log in logs)


@pytest.fixture(scope="module")
def installed(helm_kube: Cluster) -> Iterator[dict[str, float]]:
    """The chart installed watching one namespace; yields how long it took (seconds)."""
    kube = helm_kube
    for namespace in (WATCHED, OTHER):
        kube.kubectl("create", "namespace", namespace)
    liveness, metrics = free_ports(2)
    began = time.monotonic()
    kube_helm(
        kube,
        "install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace",
        "--set", f"watchNamespaces={{{WATCHED}}}",
        "--set", "replicas=1",
        "--set", f"ports.liveness={liveness}", "--set", f"ports.metrics={metrics}",
        "--wait", "--timeout", "5m",
    )  # fmt: skip
    available = time.monotonic() - began
    wait_for(lambda: lease_holder(kube), 120, "the operator to take its Lease", lambda: diagnose(kube))
    leading = time.monotonic() - began
    wait_for(lambda: healthz(liveness), 60, "kopf's /healthz", lambda: diagnose(kube))
    yield {"available": available, "leading": leading, "liveness": liveness}
    kube_helm(kube, "uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)


def test_the_operator_runs_the_chart_s_command_as_its_service_account(
    helm_kube: Cluster, installed: dict[str, float]
) -> None:
    pods = operator_pods(helm_kube)
    assert len(pods) == 1
    pod = pods[0]
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"  # the deployment controller's
    assert lease_holder(helm_kube) == pod["metadata"]["name"]  # took the Lease: authenticated, authorised
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["kubenas"]
    assert f"--namespace={WATCHED}" in container["args"]
    print(f"helm install to Deployment available: {installed['available']:.1f}s; "
          f"to the operator holding its Lease: {installed['leading']:.1f}s")  # fmt: skip


def test_helm_test_runs_a_two_trial_experiment_that_succeeds(helm_kube: Cluster, installed: Any) -> None:
    done = kube_helm(helm_kube, "test", RELEASE, "-n", NAMESPACE, "--timeout", "10m", check=False)
    assert helm_kube.agent is not None
    log = helm_kube.agent.logs(WATCHED, f"{RELEASE}-smoke-test")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{log}\n{diagnose(helm_kube)}"
    assert "Succeeded" in done.stdout, done.stdout
    output = log.get("smoke-test", "")
    assert "phase=Succeeded" in output and '"succeeded": 2' in output, output


# kopf lists and watches Namespaces and CRDs cluster-wide unless its scanning is disabled; watching given
# namespaces it falls back to them when refused (kopf's documented restricted mode). Nothing else may be.
KOPF_SCANNING = re.compile(r'cannot (list|watch) resource "(namespaces|customresourcedefinitions)"')


def test_every_call_the_operator_made_was_allowed(helm_kube: Cluster, installed: Any) -> None:
    """After the helm test's experiment: no 403 in the operator's log but kopf's optional scanning."""
    assert helm_kube.agent is not None
    (pod,) = operator_pods(helm_kube)
    log = helm_kube.agent.logs(NAMESPACE, pod["metadata"]["name"])["operator"]
    assert "Handlers.on_job" in log  # it did reconcile Jobs
    refused = [line for line in log.splitlines() if "forbidden" in line.lower()]
    assert [line for line in refused if not KOPF_SCANNING.search(line)] == []


def can_i(kube: Cluster, user: str, verb: str, resource: str, namespace: str | None, *extra: str) -> bool:
    where = ["-n", namespace] if namespace else ["--all-namespaces"]
    done = kube.kubectl("auth", "can-i", verb, resource, *where, f"--as={user}", *extra, check=False)
    assert done.stdout.strip() in ("yes", "no"), done.stdout + done.stderr
    return done.stdout.strip() == "yes"


OPERATOR_MAY = [
    ("get", "nasexperiments.kubenas.dev"),
    ("list", "nasexperiments.kubenas.dev"),
    ("watch", "nasexperiments.kubenas.dev"),
    ("patch", "nasexperiments.kubenas.dev"),
    ("patch", "nasexperiments.kubenas.dev", "--subresource=status"),
    ("create", "nastrials.kubenas.dev"),
    ("get", "nastrials.kubenas.dev"),
    ("list", "nastrials.kubenas.dev"),
    ("patch", "nastrials.kubenas.dev", "--subresource=status"),
    ("create", "jobs.batch"),
    ("delete", "jobs.batch"),
    ("list", "jobs.batch"),
    ("watch", "jobs.batch"),
    ("list", "pods"),
    ("create", "events"),
]
OPERATOR_MAY_NOT = [
    ("get", "secrets"),
    ("list", "secrets"),
    ("watch", "secrets"),
    ("create", "pods"),
    ("get", "pods"),
    ("delete", "nasexperiments.kubenas.dev"),
    ("update", "nasexperiments.kubenas.dev"),
    ("patch", "nasexperiments.kubenas.dev", "--subresource=finalizers"),
    ("delete", "nastrials.kubenas.dev"),
    ("update", "jobs.batch"),
    ("create", "serviceaccounts/token"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("get", "configmaps"),
]


@pytest.mark.parametrize("check", OPERATOR_MAY, ids=[" ".join(c) for c in OPERATOR_MAY])
def test_operator_may_what_the_chart_promises(
    helm_kube: Cluster, installed: Any, check: tuple[str, ...]
) -> None:
    verb, resource, *extra = check
    assert can_i(helm_kube, OPERATOR, verb, resource, WATCHED, *extra)
    assert not can_i(helm_kube, OPERATOR, verb, resource, OTHER, *extra), "beyond the watched namespace"


@pytest.mark.parametrize("check", OPERATOR_MAY_NOT, ids=[" ".join(c) for c in OPERATOR_MAY_NOT])
def test_operator_may_nothing_else(helm_kube: Cluster, installed: Any, check: tuple[str, ...]) -> None:
    verb, resource, *extra = check
    for namespace in (WATCHED, NAMESPACE):
        assert not can_i(helm_kube, OPERATOR, verb, resource, namespace, *extra)


def test_operator_has_no_cluster_wide_rights_and_only_its_lease(helm_kube: Cluster, installed: Any) -> None:
    for verb, resource in [
        ("list", "nasexperiments.kubenas.dev"),
        ("list", "jobs.batch"),
        ("list", "namespaces"),
        ("list", "customresourcedefinitions.apiextensions.k8s.io"),
        ("list", "secrets"),
    ]:
        assert not can_i(helm_kube, OPERATOR, verb, resource, None), f"{verb} {resource} cluster-wide"
    assert can_i(helm_kube, OPERATOR, "get", f"leases.coordination.k8s.io/{LEASE}", NAMESPACE)
    assert can_i(helm_kube, OPERATOR, "update", f"leases.coordination.k8s.io/{LEASE}", NAMESPACE)
    assert can_i(helm_kube, OPERATOR, "create", "leases.coordination.k8s.io", NAMESPACE)
    assert not can_i(helm_kube, OPERATOR, "update", "leases.coordination.k8s.io/kube-scheduler", NAMESPACE)
    assert not can_i(helm_kube, OPERATOR, "get", f"leases.coordination.k8s.io/{LEASE}", WATCHED)


def rights(kube: Cluster, user: str, namespace: str) -> str:
    return kube.kubectl("auth", "can-i", "--list", "-n", namespace, f"--as={user}").stdout


def test_trial_service_account_can_do_nothing(helm_kube: Cluster, installed: Any) -> None:
    """Exactly the rights every authenticated user has (discovery, self reviews): those of a
    ServiceAccount no binding names. And trial pods get no token to use them with."""
    for verb, resource in [
        ("list", "pods"),
        ("get", "nasexperiments.kubenas.dev"),
        ("get", "secrets"),
        ("create", "jobs.batch"),
        ("create", "events"),
    ]:
        assert not can_i(helm_kube, TRIAL, verb, resource, WATCHED), f"{verb} {resource}"
    nobody = f"system:serviceaccount:{WATCHED}:never-bound"
    assert rights(helm_kube, TRIAL, WATCHED) == rights(helm_kube, nobody, WATCHED)
    account = json.loads(
        helm_kube.kubectl("get", "serviceaccount", f"{RELEASE}-trial", "-n", WATCHED, "-o", "json").stdout
    )
    assert account["automountServiceAccountToken"] is False


def test_pods_get_a_token_only_where_it_is_mounted(helm_kube: Cluster, installed: Any) -> None:
    """The node agent's stand-in for the mounted token: `kubectl auth whoami` in a pod of the namespace's
    default ServiceAccount answers with that account; in a pod of the trial ServiceAccount it has no
    credentials at all."""
    kubectl = str(helm_kube.kubectl_bin)
    for name, account in (("with-token", "default"), ("no-token", f"{RELEASE}-trial")):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": WATCHED},
            "spec": {
                "serviceAccountName": account,
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "kubectl", "command": [kubectl, "auth", "whoami"]}],
            },
        }
        helm_kube.kubectl("apply", "-f", "-", input=json.dumps(pod))

    def phase(name: str) -> str:
        out = helm_kube.kubectl("get", "pod", name, "-n", WATCHED, "-o", "jsonpath={.status.phase}").stdout
        return out if out in ("Succeeded", "Failed") else ""

    assert wait_for(lambda: phase("with-token"), 60, "the pod with a token") == "Succeeded"
    assert wait_for(lambda: phase("no-token"), 60, "the pod without") == "Failed"
    assert helm_kube.agent is not None
    assert f"system:serviceaccount:{WATCHED}:default" in helm_kube.agent.logs(WATCHED, "with-token")["c"]
    assert "system:serviceaccount" not in helm_kube.agent.logs(WATCHED, "no-token")["c"]


def test_crd_upgrade_as_documented(helm_kube: Cluster, installed: Any, tmp_path: Path) -> None:
    """README / NOTES: server-side apply of the chart's crds/ over the ones Helm installed, then helm
    upgrade. A changed CRD (here: an extra annotation) lands, and the upgrade goes through."""
    crds = tmp_path / "crds"
    crds.mkdir()
    for source in sorted((CHART / "crds").glob("*.yaml")):
        crd = yaml.safe_load(source.read_text())
        crd["metadata"].setdefault("annotations", {})["kubenas.dev/upgraded"] = "yes"
        (crds / source.name).write_text(yaml.safe_dump(crd))
    helm_kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
    kube_helm(helm_kube, "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values", "--wait")
    crd = json.loads(helm_kube.kubectl("get", "crd", "nasexperiments.kubenas.dev", "-o", "json").stdout)
    assert crd["metadata"]["annotations"]["kubenas.dev/upgraded"] == "yes"
    status = json.loads(kube_helm(helm_kube, "status", RELEASE, "-n", NAMESPACE, "-o", "json").stdout)
    assert (status["version"], status["info"]["status"]) == (2, "deployed")
    wait_for(lambda: lease_holder(helm_kube), 120, "the operator to lead again", lambda: diagnose(helm_kube))


def experiment(name: str, namespace: str) -> dict[str, Any]:
    """The smallest experiment: one trial of one epoch."""
    return {
        "apiVersion": "kubenas.dev/v1alpha1",
        "kind": "NASExperiment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "objective": {"metric": "accuracy"},
            "searchSpace": {"layers": {"count": {"min": 1, "max": 1}, "types": ["dense"]}},
            "budget": {"maxTrials": 1, "parallelTrials": 1},
            "training": {"dataset": "digits", "epochs": 1},
            "trialTemplate": {"image": "trainer", "resources": {"requests": {"cpu": "100m"}}},
        },
    }


def phase(kube: Cluster, name: str, namespace: str) -> str:
    out = kube.kubectl("get", "nasx", name, "-n", namespace, "-o", "jsonpath={.status.phase}", check=False)
    return out.stdout if out.returncode == 0 else ""


def test_cluster_wide_install_reconciles_any_namespace_and_reads_no_secrets(
    helm_kube: Cluster, installed: Any
) -> None:
    """A second release, watching all namespaces: a ClusterRole, and an experiment in a namespace the
    first release does not watch gets reconciled."""
    release, namespace = "c", "kubenas-cluster"
    user = f"system:serviceaccount:{namespace}:{release}-operator"
    liveness, metrics = free_ports(2)
    kube_helm(
        helm_kube,
        "install", release, str(CHART), "-n", namespace, "--create-namespace", "--skip-crds",
        "--set", "replicas=1", "--set", "tests.enabled=false",
        "--set", f"ports.liveness={liveness}", "--set", f"ports.metrics={metrics}",
        "--wait", "--timeout", "5m",
    )  # fmt: skip
    try:
        assert can_i(helm_kube, user, "list", "nasexperiments.kubenas.dev", None)
        assert can_i(helm_kube, user, "watch", "customresourcedefinitions.apiextensions.k8s.io", None)
        for verb in ("get", "list", "watch"):
            assert not can_i(helm_kube, user, verb, "secrets", None)
        assert not can_i(helm_kube, user, "list", "namespaces", None)
        helm_kube.kubectl("apply", "-f", "-", input=json.dumps(experiment("anywhere", OTHER)))
        found = wait_for(
            lambda: phase(helm_kube, "anywhere", OTHER), 120, "a first pass", lambda: diagnose(helm_kube)
        )
        assert found in ("Pending", "Running", "Succeeded")
    finally:
        helm_kube.kubectl("delete", "nasx", "anywhere", "-n", OTHER, "--wait=false", check=False)
        kube_helm(helm_kube, "uninstall", release, "-n", namespace, "--wait", check=False)


def test_trials_run_as_the_trial_service_account(helm_kube: Cluster, installed: Any) -> None:
    """The chart's --trial-defaults reach the trial Jobs: their pods run as the trial ServiceAccount."""
    helm_kube.kubectl("apply", "-f", "-", input=json.dumps(experiment("as-trial", WATCHED)))
    try:

        def jobs() -> list[dict[str, Any]]:
            selector = "kubenas.dev/experiment=as-trial"
            out = helm_kube.kubectl("get", "jobs", "-n", WATCHED, "-l", selector, "-o", "json").stdout
            return list(json.loads(out)["items"])

        job = wait_for(jobs, 120, "the trial's Job", lambda: diagnose(helm_kube))[0]
        assert job["spec"]["template"]["spec"]["serviceAccountName"] == f"{RELEASE}-trial"
    finally:
        helm_kube.kubectl("delete", "nasx", "as-trial", "-n", WATCHED, "--wait=false", check=False)
