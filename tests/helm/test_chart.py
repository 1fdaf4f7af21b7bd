"""The Helm chart with the real helm (built from helm.sh/helm/v4): lint, render, validate against three
Kubernetes minors and the Prometheus Operator's CRDs, values.schema.json, RBAC, the hardened Deployment,
and the alerts through promtool (Debian's Prometheus)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubenas.api.manifest import parse_manifest
from kubenas.k8s.defaults import parse_trial_defaults

from .chart import (
    ALL_FEATURES,
    CHART,
    KUBERNETES_VERSIONS,
    NAMESPACE,
    RELEASE,
    find,
    helm,
    render,
    validate_kubernetes,
    validate_prometheus_operator,
)

PROMETHEUS_OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
NAMESPACED = ["watchNamespaces={team-a,team-b}"]
# Each rendering the tests check: (values files, --set).
RENDERINGS: dict[str, tuple[tuple[Path, ...], list[str]]] = {
    "default": ((), []),
    "all-features": ((ALL_FEATURES,), []),
    "cluster-wide-all-features": (
        (ALL_FEATURES,),
        ["watchNamespaces=null", "trialServiceAccount.namespaces={ml}"],
    ),
    "one-replica-no-election": ((), ["replicas=1", "leaderElection.enabled=false", "tests.enabled=false"]),
}


@pytest.fixture(scope="module", params=list(RENDERINGS))
def rendering(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    files, sets = RENDERINGS[request.param]
    return request.param, render(files, sets)


@pytest.mark.parametrize("values", [(), (ALL_FEATURES,)], ids=["default", "all-features"])
def test_lint_strict(values: tuple[Path, ...]) -> None:
    args = [a for f in values for a in ("-f", str(f))]
    done = helm("lint", "--strict", str(CHART), *args)
    assert "0 chart(s) failed" in done.stdout, done.stdout


def test_every_object_is_valid_for_three_kubernetes_minors(
    rendering: tuple[str, list[dict[str, Any]]],
) -> None:
    name, objects = rendering
    checked = 0
    for obj in objects:
        if obj["kind"] in PROMETHEUS_OPERATOR_KINDS:
            validate_prometheus_operator(obj)
        else:
            for version in KUBERNETES_VERSIONS:
                validate_kubernetes(obj, version)
        checked += 1
    assert checked == len(objects) > 0
    if name.endswith("all-features"):
        assert {o["kind"] for o in objects} >= PROMETHEUS_OPERATOR_KINDS


def test_validators_catch_a_broken_object() -> None:
    """The validators are not vacuous: a typo'd field fails both kinds of check."""
    objects = render((ALL_FEATURES,))
    deployment = find(objects, "Deployment")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    with pytest.raises(Exception, match="securityContxt"):
        validate_kubernetes(deployment, KUBERNETES_VERSIONS[0])
    monitor = find(objects, "ServiceMonitor")[0]
    monitor["spec"]["endpoints"][0]["honourLabels"] = True
    with pytest.raises(Exception, match="honourLabels"):
        validate_prometheus_operator(monitor)
    rule = find(objects, "PrometheusRule")[0]
    rule["spec"]["groups"][0]["rules"][0]["for"] = 5
    with pytest.raises(Exception, match="5"):
        validate_prometheus_operator(rule)


def test_names_and_namespaces_are_unique(rendering: tuple[str, list[dict[str, Any]]]) -> None:
    keys = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in rendering[1]]
    assert len(keys) == len(set(keys))


# -- values.schema.json: bad values fail at template / install time, naming the value -----------------

BAD_VALUES = [
    (["replicas=-1"], "/replicas"),
    (["log.level=loud"], "/log/level"),
    (["log.format=xml"], "/log/format"),
    (["watchNamespaces={Team_A}"], "/watchNamespaces/0"),
    (["ports.metrics=70000"], "/ports/metrics"),
    (["metrics.pushgateway=pushgateway:9091"], "/metrics/pushgateway"),
    (["trialDefaults.gpus=1"], "gpus"),
    (["trialDefaults.activeDeadlineSeconds=0"], "/trialDefaults/activeDeadlineSeconds"),
    (["trialDefaults.resources.requests.cpu=lots"], "/trialDefaults/resources/requests/cpu"),
    (["image.tga=v1"], "tga"),
    (["serviceMonitor.interval=soon"], "/serviceMonitor/interval"),
    (["prometheusRule.stuckExperimentMinutes=0"], "/prometheusRule/stuckExperimentMinutes"),
    (["checkpoints.persistence.accessModes={ReadWriteSometimes}"], "/checkpoints/persistence/accessModes/0"),
]


@pytest.mark.parametrize(("sets", "named"), BAD_VALUES, ids=[s[0] for s, _ in BAD_VALUES])
def test_schema_rejects_bad_values_naming_them(sets: list[str], named: str) -> None:
    done = helm("template", RELEASE, str(CHART), *(a for s in sets for a in ("--set", s)), check=False)
    assert done.returncode != 0, f"{sets} was accepted"
    assert "values don't meet the specifications of the schema" in done.stderr
    assert named in done.stderr, done.stderr


def test_install_checks_the_schema_too() -> None:
    """`helm install` refuses before it talks to any cluster (--dry-run=client)."""
    done = helm("install", RELEASE, str(CHART), "--dry-run=client", "--set", "log.level=loud", check=False)
    assert done.returncode != 0 and "/log/level" in done.stderr, done.stderr
    ok = helm("install", RELEASE, str(CHART), "--dry-run=client", "--set", "log.level=debug", check=False)
    assert ok.returncode == 0, ok.stderr


def test_two_replicas_need_leader_election() -> None:
    done = helm("template", RELEASE, str(CHART), "--set", "leaderElection.enabled=false", check=False)
    assert done.returncode != 0
    assert "replicas: 2 needs leaderElection.enabled: true" in done.stderr


# -- RBAC -------------------------------------------------------------------------------------------


def _rules(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for o in objects if o["kind"] in ("Role", "ClusterRole") for r in o.get("rules", [])]


def test_cluster_wide_gets_one_cluster_role_and_no_operator_roles() -> None:
    objects = render()
    assert [o["metadata"]["name"] for o in find(objects, "ClusterRole")] == [f"{RELEASE}-operator"]
    binding = find(objects, "ClusterRoleBinding")[0]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": f"{RELEASE}-operator", "namespace": NAMESPACE}
    ]
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in find(objects, "Role")}
    assert roles == {(NAMESPACE, f"{RELEASE}-operator-leader-election"), (NAMESPACE, f"{RELEASE}-smoke-test")}


def test_watched_namespaces_get_a_role_each_and_nothing_cluster_wide() -> None:
    objects = render(sets=NAMESPACED)
    assert not find(objects, "ClusterRole") and not find(objects, "ClusterRoleBinding")
    operator_roles = {o["metadata"]["namespace"] for o in find(objects, "Role", f"{RELEASE}-operator")}
    bindings = find(objects, "RoleBinding", f"{RELEASE}-operator")
    assert operator_roles == {b["metadata"]["namespace"] for b in bindings} == {"team-a", "team-b"}
    for b in bindings:
        assert b["roleRef"]["name"] == f"{RELEASE}-operator"
        assert b["subjects"][0]["namespace"] == NAMESPACE
    args = find(objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace")] == ["--namespace=team-a", "--namespace=team-b"]


EXPECTED_OPERATOR_RULES = {
    ("kubenas.dev", "nasexperiments"): {"get", "list", "watch", "patch"},
    ("kubenas.dev", "nastrials"): {"get", "list", "create"},
    ("kubenas.dev", "nasexperiments/status"): {"patch"},
    ("kubenas.dev", "nastrials/status"): {"patch"},
    ("kubenas.dev", "nasexperiments/finalizers"): {"update"},
    ("kubenas.dev", "nastrials/finalizers"): {"update"},
    ("batch", "jobs"): {"list", "watch", "create", "delete"},
    ("", "pods"): {"list"},
    ("", "events"): {"create"},
}


def _grants(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


@pytest.mark.parametrize("sets", [[], NAMESPACED], ids=["cluster-wide", "namespaced"])
def test_operator_rules_are_exactly_what_it_calls(sets: list[str]) -> None:
    objects = render(sets=sets)
    name = f"{RELEASE}-operator"
    roles = find(objects, "ClusterRole", name) + find(objects, "Role", name)
    expected = dict(EXPECTED_OPERATOR_RULES)
    if not sets:  # kopf follows CRDs only when watching all namespaces
        expected[("apiextensions.k8s.io", "customresourcedefinitions")] = {"get", "list", "watch"}
    for role in roles:
        assert _grants(role["rules"]) == expected
    election = find(objects, "Role", f"{name}-leader-election")[0]
    assert _grants(election["rules"]) == {("coordination.k8s.io", "leases"): {"get", "create", "update"}}
    assert [r.get("resourceNames") for r in election["rules"]] == [None, [f"{RELEASE}-kubenas"]]


@pytest.mark.parametrize("name", list(RENDERINGS))
def test_no_role_touches_secrets_or_uses_wildcards(name: str) -> None:
    files, sets = RENDERINGS[name]
    for rule in _rules(render(files, sets)):
        assert "secrets" not in rule["resources"], rule
        assert "*" not in rule["resources"] + rule["verbs"] + rule["apiGroups"], rule


def test_trial_service_account_has_no_token_and_no_binding() -> None:
    objects = render(sets=NAMESPACED)
    trial = find(objects, "ServiceAccount", f"{RELEASE}-trial")
    assert {sa["metadata"]["namespace"] for sa in trial} == {"team-a", "team-b"}
    assert all(sa["automountServiceAccountToken"] is False for sa in trial)
    subjects = [s["name"] for o in objects if o["kind"].endswith("Binding") for s in o["subjects"]]
    assert f"{RELEASE}-trial" not in subjects
    defaults = _trial_defaults(objects)
    assert defaults == {"serviceAccountName": f"{RELEASE}-trial"}


def test_cluster_wide_creates_no_trial_service_account_unless_told_where() -> None:
    assert not find(render(), "ServiceAccount", f"{RELEASE}-trial")
    assert _trial_defaults(render()) is None
    objects = render(sets=["trialServiceAccount.namespaces={ml}"])
    assert [sa["metadata"]["namespace"] for sa in find(objects, "ServiceAccount", f"{RELEASE}-trial")] == [
        "ml"
    ]


def test_test_hook_service_account_may_only_run_its_experiment() -> None:
    objects = render(sets=NAMESPACED)
    name = f"{RELEASE}-smoke-test"
    role = find(objects, "Role", name)[0]
    assert role["metadata"]["namespace"] == "team-a"
    assert _grants(role["rules"]) == {("kubenas.dev", "nasexperiments"): {"get", "delete", "create"}}
    assert role["rules"][0]["resourceNames"] == [name]
    pod = find(objects, "Pod", name)[0]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["serviceAccountName"] == name


# -- the operator Deployment ------------------------------------------------------------------------


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(find(objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0])


def _trial_defaults(objects: list[dict[str, Any]]) -> dict[str, Any] | None:
    found = [a for a in _container(objects)["args"] if a.startswith("--trial-defaults=")]
    return json.loads(found[0].removeprefix("--trial-defaults=")) if found else None


def test_deployment_is_hardened(rendering: tuple[str, list[dict[str, Any]]]) -> None:
    deployment = find(rendering[1], "Deployment")[0]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
    liveness = next(a for a in container["args"] if a.startswith("--liveness="))
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["health"]
    assert liveness == f"--liveness=http://0.0.0.0:{port}/healthz"
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["command"] == ["kubenas"] and container["args"][0] == "operator"


def test_deployment_renders_operator_settings_from_values() -> None:
    objects = render((ALL_FEATURES,))
    deployment = find(objects, "Deployment")[0]
    assert deployment["spec"]["replicas"] == 3
    args = _container(objects)["args"]
    for flag in (
        "--log-level=debug",
        "--log-format=json",
        "--leader-election",
        f"--leader-election-namespace={NAMESPACE}",
        f"--leader-election-id={RELEASE}-kubenas",
        "--metrics-port=9090",
        "--pushgateway=http://prometheus-pushgateway.monitoring:9091",
        "--prometheus=http://prometheus-operated.monitoring:9090",
        "--storage-bucket=kubenas-runs",
        "--storage-secret=kubenas-s3",
    ):
        assert flag in args, flag
    values = yaml.safe_load(ALL_FEATURES.read_text())
    defaults = _trial_defaults(objects)
    assert defaults == {
        **values["trialDefaults"],
        "serviceAccountName": f"{RELEASE}-trial",
        "checkpointVolume": {"persistentVolumeClaim": {"claimName": f"{RELEASE}-checkpoints"}},
    }
    parse_trial_defaults(json.dumps(defaults))  # what the operator does with it: raises if it is not valid
    assert _container(objects)["envFrom"] == [{"secretRef": {"name": "kubenas-operator-s3"}}]
    single = _container(render(sets=["replicas=1", "leaderElection.enabled=false"]))["args"]
    assert "--no-leader-election" in single and not any(a.startswith("--leader-election") for a in single)


def test_default_values_need_no_prometheus_or_object_storage() -> None:
    args = _container(render())["args"]
    assert not [a for a in args if a.startswith(("--pushgateway", "--prometheus", "--storage"))]
    assert "envFrom" not in _container(render())


def test_the_user_s_trial_service_account_wins() -> None:
    objects = render(sets=[*NAMESPACED, "trialDefaults.serviceAccountName=mine"])
    assert _trial_defaults(objects) == {"serviceAccountName": "mine"}


def test_smoke_experiment_is_a_valid_two_trial_experiment() -> None:
    pod = find(render(sets=NAMESPACED), "Pod", f"{RELEASE}-smoke-test")[0]
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    manifest = json.loads(env["SMOKE_MANIFEST"])
    experiment = parse_manifest(manifest)
    assert experiment.spec.budget.max_trials == 2 and experiment.spec.training.epochs == 1
    assert manifest["metadata"] == {**manifest["metadata"], "namespace": "team-a", "name": env["SMOKE_NAME"]}
    script = pod["spec"]["containers"][0]["command"][2]
    assert script == (CHART / "files" / "smoke_test.py").read_text()


# -- optional features ---------------------------------------------------------------------------------


def test_optional_features_are_off_by_default() -> None:
    kinds = {o["kind"] for o in render()}
    assert not kinds & {"ServiceMonitor", "PrometheusRule", "PersistentVolumeClaim", "NetworkPolicy"}


def test_optional_features_render_where_they_belong() -> None:
    objects = render((ALL_FEATURES,))
    monitor = find(objects, "ServiceMonitor")[0]
    service = find(objects, "Service")[0]
    assert monitor["spec"]["jobLabel"] == "kubenas.dev/job"
    assert service["metadata"]["labels"]["kubenas.dev/job"] == "kubenas-operator"  # the dashboard's job
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    pvcs = find(objects, "PersistentVolumeClaim")
    assert {p["metadata"]["namespace"] for p in pvcs} == {"team-a", "team-b"}
    assert pvcs[0]["spec"]["storageClassName"] == "standard-rwx"
    policies = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in find(objects, "NetworkPolicy")}
    assert policies == {
        (NAMESPACE, f"{RELEASE}-operator"),
        ("team-a", f"{RELEASE}-trials"),
        ("team-b", f"{RELEASE}-trials"),
    }
    dashboard = find(objects, "ConfigMap", f"{RELEASE}-operator-dashboard")[0]
    assert dashboard["metadata"]["namespace"] == "monitoring"
    json.loads(dashboard["data"]["kubenas.json"])


# -- alerts: promtool checks the rules and runs them on series -------------------------------------


def _rule_file(tmp_path: Path) -> Path:
    rule = find(render((ALL_FEATURES,)), "PrometheusRule")[0]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    return path


@pytest.fixture
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool not installed (tests/services/install.sh installs Prometheus)")
    return found


def test_promtool_checks_the_rules(promtool: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [promtool, "check", "rules", str(_rule_file(tmp_path))], capture_output=True, text=True
    )
    assert done.returncode == 0 and "SUCCESS: 3 rules found" in done.stdout, done.stdout + done.stderr


def test_alerts_fire_on_a_stuck_experiment_and_a_crash_looping_operator(
    promtool: str, tmp_path: Path
) -> None:
    """promtool's rule unit tests: a Running experiment whose finished count stops moving fires after the
    window (60 min) plus `for` (5 min), one whose trials keep finishing never does; 3 restarts in 15 min
    fire the crash-loop alert."""
    rules = _rule_file(tmp_path)
    trials = 'kubenas_experiment_trials{{job="kubenas-operator",namespace="ml",experiment="{e}",phase="{p}"}}'
    tests = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": trials.format(e="stuck", p="Running"), "values": "2x120"},
                    {"series": trials.format(e="stuck", p="Succeeded"), "values": "0+1x5 5x115"},
                    {"series": trials.format(e="moving", p="Running"), "values": "2x120"},
                    {"series": trials.format(e="moving", p="Succeeded"), "values": "0+1x120"},
                    {
                        "series": f'kube_pod_container_status_restarts_total{{namespace="{NAMESPACE}",'
                        f'pod="{RELEASE}-operator-5d9c-abcde",container="operator"}}',
                        "values": "0 0 1 1 2 2 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3",
                    },
                    {"series": 'up{job="kubenas-operator"}', "values": "1x120"},
                ],
                "alert_rule_test": [
                    {"eval_time": "60m", "alertname": "KubenasExperimentStuck", "exp_alerts": []},
                    {
                        "eval_time": "71m",
                        "alertname": "KubenasExperimentStuck",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "namespace": "ml",
                                    "experiment": "stuck",
                                },
                                "exp_annotations": {
                                    "summary": "Experiment ml/stuck has had no trial finish in 60 minutes",
                                    "description": "Trials are pending or running but none ended. Check "
                                    "`kubenas status --cluster stuck -n ml` and the trials' Jobs and pods.",
                                },
                            }
                        ],
                    },
                    {"eval_time": "3m", "alertname": "KubenasOperatorCrashLooping", "exp_alerts": []},
                    {
                        "eval_time": "8m",
                        "alertname": "KubenasOperatorCrashLooping",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "namespace": NAMESPACE,
                                    "pod": f"{RELEASE}-operator-5d9c-abcde",
                                    "container": "operator",
                                },
                                "exp_annotations": {
                                    "summary": f"The kubenas operator pod {RELEASE}-operator-5d9c-abcde "
                                    "restarted 3 times in 15 minutes",
                                    "description": f"Read its log: kubectl logs -n {NAMESPACE} "
                                    f"{RELEASE}-operator-5d9c-abcde -c operator --previous",
                                },
                            }
                        ],
                    },
                    {"eval_time": "60m", "alertname": "KubenasOperatorDown", "exp_alerts": []},
                ],
            }
        ],
    }
    path = tmp_path / "tests.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    done = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("sets", [[], NAMESPACED], ids=["cluster-wide", "namespaced"])
def test_notes_say_where_it_watches_and_how_to_upgrade_crds(sets: list[str]) -> None:
    args = [a for s in sets for a in ("--set", s)]
    done = helm("install", RELEASE, str(CHART), "-n", NAMESPACE, "--dry-run=client", *args)
    notes = done.stdout.split("NOTES:", 1)[1]
    assert "kubectl apply --server-side --force-conflicts -f <chart>/crds/" in notes
    assert f"helm test {RELEASE} -n {NAMESPACE}" in notes
    if sets:
        assert "the namespaces team-a, team-b (a Role in each, no cluster-wide rights)" in notes
        assert "created in: team-a, team-b" in notes
    else:
        assert "all namespaces (a ClusterRole)" in notes
        assert "no trial ServiceAccount was created" in notes
