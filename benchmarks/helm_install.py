"""`helm install` of the chart on the real control plane: time to the operator being ready, the rendered
resources, and each ServiceAccount's permissions.

Starts what the cluster tests start (kube-apiserver with RBAC, etcd, controller-manager with the
Deployment and ReplicaSet controllers, scheduler; the node agent that runs the chart's operator pod as a
local process, authenticated with a TokenRequest token of its ServiceAccount), then, per run and per mode
(watching one namespace / all namespaces), times from the start of `helm install --wait`:
- available: `helm install --wait` returned (the Deployment is available: its pod runs);
- leading: the operator's Lease has a holder (it won the election);
- first pass: an experiment applied as soon as `helm install` returned has a status.phase (the operator
  really reconciles: kopf's watches are up).
One replica (the node agent's pods share this machine's ports), tests hook off; medians of --runs.

Then prints the resources `helm template` renders with every optional feature on (tests/helm/
values-all.yaml), and each ServiceAccount's rules (from the rendered RBAC of a namespaced install),
each verb confirmed with `kubectl auth can-i --as` on the live install.

    PYTHONPATH=operator:trainer:. .venv/bin/python -m benchmarks.helm_install --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from tests.cluster.controlplane import CONTROLLERS, ControlPlane, free_ports
from tests.cluster.node_agent import NodeAgent
from tests.cluster.test_helm_install import experiment
from tests.helm.chart import ALL_FEATURES, CHART, find, helm, helm_bin, render

Obj = dict[str, Any]


def wait(predicate: Any, timeout: float, what: str) -> float:
    """Seconds on the monotonic clock when ``predicate()`` first held."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:.0f}s")
        time.sleep(0.1)
    return time.monotonic()


def one_install(cp: ControlPlane, run: int, namespaced: bool) -> dict[str, float]:
    release = f"{'n' if namespaced else 'c'}{run}"
    namespace, watched = f"{release}-system", f"{release}-team"
    cp.kubectl("create", "namespace", watched)
    liveness, metrics = free_ports(2)
    values = ["replicas=1", "tests.enabled=false", f"ports.liveness={liveness}", f"ports.metrics={metrics}"]
    if namespaced:
        values.append(f"watchNamespaces={{{watched}}}")
    sets = [a for v in values for a in ("--set", v)]
    kubeconfig = ["--kubeconfig", str(cp.kubeconfig)]
    began = time.monotonic()
    helm("install", release, str(CHART), "-n", namespace, "--create-namespace", *sets, "--wait", *kubeconfig)
    available = time.monotonic()
    cp.kubectl("apply", "-f", "-", input=json.dumps(experiment("first", watched)))

    def holder() -> bool:
        done = cp.kubectl("get", "lease", f"{release}-kubenas", "-n", namespace, "-o", "json", check=False)
        return done.returncode == 0 and bool(json.loads(done.stdout)["spec"].get("holderIdentity"))

    def reconciled() -> bool:
        path = "jsonpath={.status.phase}"
        return bool(cp.kubectl("get", "nasx", "first", "-n", watched, "-o", path, check=False).stdout)

    leading = wait(holder, 180, "Lease holder")
    first = wait(reconciled, 300, "first pass")
    cp.kubectl("delete", "nasx", "first", "-n", watched, "--wait=false")
    helm("uninstall", release, "-n", namespace, "--wait", *kubeconfig)
    return {"available": available - began, "leading": leading - began, "first pass": first - began}


def rbac_rows(objects: list[Obj]) -> list[tuple[str, str, str, str, str, str]]:
    """(service account, where, api group, resources, verbs, names) of every rule bound to each SA."""
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}
    rows = []
    for account in find(objects, "ServiceAccount"):
        sa = f"{account['metadata']['namespace']}/{account['metadata']['name']}"
        bound = False
        for binding in [o for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")]:
            subjects = {(s["namespace"], s["name"]) for s in binding["subjects"]}
            if (account["metadata"]["namespace"], account["metadata"]["name"]) not in subjects:
                continue
            bound = True
            ref = binding["roleRef"]
            where = binding["metadata"].get("namespace") or "cluster"
            namespace = None if ref["kind"] == "ClusterRole" else binding["metadata"]["namespace"]
            for rule in roles[(ref["kind"], namespace, ref["name"])]["rules"]:
                rows.append(
                    (
                        sa,
                        where,
                        ",".join(g or "core" for g in rule["apiGroups"]),
                        ",".join(rule["resources"]),
                        ",".join(rule["verbs"]),
                        ",".join(rule.get("resourceNames", [])),
                    )
                )
        if not bound:
            token = "no token" if account.get("automountServiceAccountToken") is False else "token"
            rows.append((sa, "-", "-", f"none ({token})", "-", "-"))
    return rows


def confirmed(cp: ControlPlane, row: tuple[str, str, str, str, str, str]) -> str:
    """yes when `kubectl auth can-i` agrees for every verb x resource of the row (live install)."""
    sa, where, groups, resources, verbs, names = row
    if verbs == "-":
        return "-"
    namespace, name = sa.split("/")
    user = f"system:serviceaccount:{namespace}:{name}"
    scope = ["--all-namespaces"] if where == "cluster" else ["-n", where]
    for group in groups.split(","):
        for resource in resources.split(","):
            base, _, sub = resource.partition("/")
            target = base if group == "core" else f"{base}.{group}"
            if names:
                target += f"/{names.split(',')[0]}"
            extra = [f"--subresource={sub}"] if sub else []
            for verb in verbs.split(","):
                done = cp.kubectl("auth", "can-i", verb, target, *scope, *extra, f"--as={user}", check=False)
                if done.stdout.strip() != "yes":
                    return f"NO: {verb} {target}"
    return "yes"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    version = helm("version", "--short").stdout.strip()
    print(f"helm {version} ({helm_bin()}); chart {CHART}\n")
    controllers = (*CONTROLLERS, "deployment-controller", "replicaset-controller")
    with ControlPlane(controllers=controllers) as cp, NodeAgent(cp.kubeconfig):
        timings: dict[str, list[dict[str, float]]] = {"one namespace": [], "all namespaces": []}
        for run in range(args.runs):
            for mode, namespaced in (("one namespace", True), ("all namespaces", False)):
                timings[mode].append(one_install(cp, run, namespaced))
        print(f"## Install to ready (seconds from `helm install` start, median of {args.runs})\n")
        print("| watching | available | leading | first pass | runs (first pass) |")
        print("|---|---|---|---|---|")
        for mode, runs in timings.items():
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            each = " ".join(f"{r['first pass']:.1f}" for r in runs)
            cells = " | ".join(f"{med[k]:.1f}" for k in ("available", "leading", "first pass"))
            print(f"| {mode} | {cells} | {each} |")

        print("\n## Rendered resources (every optional feature on: tests/helm/values-all.yaml)\n")
        print("| kind | name | namespace | hook |")
        print("|---|---|---|---|")
        for o in render((ALL_FEATURES,)):
            hook = o["metadata"].get("annotations", {}).get("helm.sh/hook", "")
            print(
                f"| {o['kind']} | {o['metadata']['name']} | {o['metadata'].get('namespace', '')} | {hook} |"
            )

        # Permissions: a live namespaced install with the test hook's RBAC (rendered, applied by hand as
        # `helm test` would create it), so that can-i can confirm every row.
        sets = ["--set", "watchNamespaces={team-a}", "--set", "replicas=1"]
        cp.kubectl("create", "namespace", "team-a")
        liveness, metrics = free_ports(2)
        ports = ["--set", f"ports.liveness={liveness}", "--set", f"ports.metrics={metrics}"]
        kubeconfig = ["--kubeconfig", str(cp.kubeconfig)]
        helm(
            "install",
            "r",
            str(CHART),
            "-n",
            "kubenas-system",
            "--create-namespace",
            *sets,
            *ports,
            *kubeconfig,
        )
        objects = render(sets=[sets[1], sets[3]])
        hooks = [o for o in objects if o["kind"] in ("ServiceAccount", "Role", "RoleBinding")]
        hooks = [o for o in hooks if o["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
        cp.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": hooks}))
        print("\n## ServiceAccounts' permissions (watchNamespaces: [team-a], release in kubenas-system)\n")
        print("| service account | where | api group | resources | verbs | resource names | can-i |")
        print("|---|---|---|---|---|---|---|")
        for row in rbac_rows(objects):
            print("| " + " | ".join((*row, confirmed(cp, row))) + " |")
        for sa in ("kubenas-system/r-operator", "team-a/r-trial"):
            namespace, name = sa.split("/")
            user = f"system:serviceaccount:{namespace}:{name}"
            secrets = cp.kubectl("auth", "can-i", "get", "secrets", "-A", f"--as={user}", check=False).stdout
            print(f"\n{sa}: can-i get secrets (any namespace): {secrets.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
