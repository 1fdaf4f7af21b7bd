"""Fuzzing the cluster: generated manifests (tests/fuzz/manifests.py) against the real API server and the
real operator, compared with what kubenas itself makes of them.

Every manifest goes through a server-side dry run with the generated CRDs installed (fieldValidation
Strict, as `kubectl apply` sends it) and through `kubenas validate` in process. They must agree:
whatever one refuses the other refuses, and each refusal names the field. A spec the API server accepts
is parsed again as stored (defaults filled in, nulls pruned), as the operator reads it. A sample of the
accepted ones is applied for real and reconciled by `kubenas operator`: each must get phase Running (and
Jobs), or condition Failed/InvalidSpec naming the field (and no Job). A ResourceQuota of 0 pods keeps the
trials from training: Jobs are created, their pods are not.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubenas.api.experiment import API_VERSION, GROUP, NAME_LIMIT, VERSION
from kubenas.k8s.labels import EXPERIMENT_LABEL
from kubernetes import client, config

from tests.fuzz.manifests import Case, corpus
from tests.fuzz.verdicts import Verdict, models, named_fields, operator, validate

from .fixtures import Cluster
from .operator_process import OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CASES = 1200
SAMPLE = 40  # accepted manifests run through the operator, in batches of BATCH
BATCH = 10
OUTCOME_SECONDS = 60
BUDGET_ENDS = ("WallClockBudgetExhausted", "GPUHoursBudgetExhausted")
PLURAL = "nasexperiments"


@dataclass
class Outcome:
    case: Case
    validate: Verdict  # `kubenas validate`: the models, then the strategy
    models: Verdict  # the models alone
    refusal: str | None  # the API server's message when it refuses the dry run
    stored: dict[str, Any] | None = None  # what the API server would store
    operator: Verdict | None = None  # the operator's verdict on the stored object (in process)


@pytest.fixture(scope="module")
def custom(kube: Cluster) -> Iterator[client.CustomObjectsApi]:
    api_client = config.new_client_from_config(str(kube.kubeconfig))
    yield client.CustomObjectsApi(api_client)
    api_client.close()


def dry_run(api: client.CustomObjectsApi, namespace: str, case: Case) -> Outcome:
    outcome = Outcome(case, validate(case.doc), models(case.doc), None)
    try:
        stored = api.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, case.doc, dry_run="All", field_validation="Strict"
        )
    except client.ApiException as error:
        outcome.refusal = _message(error)
        return outcome
    outcome.stored = stored
    outcome.operator = operator(stored)
    return outcome


def _message(error: client.ApiException) -> str:
    try:
        return str(json.loads(error.body)["message"])
    except (TypeError, ValueError, KeyError):
        return f"{error.status} {error.reason}: {error.body}"


def test_generated_manifests_against_the_api_server_and_the_operator(
    kube: Cluster, custom: client.CustomObjectsApi, namespace: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    cases = corpus(CASES)
    assert len(cases) >= 1000
    outcomes = [dry_run(custom, namespace, case) for case in cases]
    accepted = [o for o in outcomes if o.refusal is None]
    unnamed_refusals = [o for o in outcomes if o.refusal is not None and not named_fields(o.refusal)]
    unnamed_problems = [o for o in outcomes if any(not named_fields(p) for p in o.validate.problems)]
    looser_crd = [o for o in accepted if not o.models.accepted]
    stricter_crd = [o for o in outcomes if o.refusal is not None and o.models.accepted]
    stored_refused = [o for o in accepted if not models(o.stored).accepted]

    run = run_through_the_operator(kube, custom, _sample(accepted), tmp_path)

    report = _report(outcomes, run, time.monotonic() - started)
    print("\n" + report)
    (tmp_path / "fuzz-report.txt").write_text(report + "\n")

    assert not unnamed_refusals, _cases("API server refusals that name no field", unnamed_refusals)
    assert not unnamed_problems, _cases("kubenas problems that name no field", unnamed_problems)
    assert not looser_crd, _cases("the API server accepts what the models refuse", looser_crd)
    assert not stricter_crd, _cases("the API server refuses what the models accept", stricter_crd)
    assert not stored_refused, _cases("the models refuse the object as stored", stored_refused)
    assert run.alive and run.tracebacks == 0, f"the operator: alive={run.alive}, {run.tracebacks} tracebacks"
    assert run.pods == 0, "the ResourceQuota should have kept every trial pod from being created"
    wrong = [o for o in run.observed if o.problem]
    assert not wrong, "\n".join(f"{o.name}: {o.problem} ({o.outcome.case.describe()})" for o in wrong)


def _sample(accepted: list[Outcome]) -> list[Outcome]:
    """Up to SAMPLE accepted manifests: those the operator refuses first (at most half), then valid ones
    spread over the corpus."""
    invalid = [o for o in accepted if o.operator is not None and not o.operator.accepted]
    valid = [o for o in accepted if o.operator is not None and o.operator.accepted]
    chosen = invalid[: SAMPLE // 2]
    step = max(1, len(valid) // (SAMPLE - len(chosen)))
    return chosen + valid[::step][: SAMPLE - len(chosen)]


def _batches(sample: list[Outcome]) -> list[list[Outcome]]:
    """Batches of at most BATCH (a batch shares a namespace) in which no name repeats and no experiment
    is another's strategy.warmStartFrom (which the verdicts take to exist nowhere)."""

    def names(o: Outcome) -> set[str]:
        source = (o.stored or {}).get("spec", {}).get("strategy", {}).get("warmStartFrom")
        return {o.case.doc["metadata"]["name"], *([source] if source else [])}

    batches: list[list[Outcome]] = []
    for o in sample:
        fits = (b for b in batches if len(b) < BATCH and all(not names(o) & names(x) for x in b))
        batch = next(fits, None)
        if batch is None:
            batches.append(batch := [])
        batch.append(o)
    return batches


@dataclass
class Observed:
    outcome: Outcome
    name: str
    namespace: str
    phase: str | None = None
    condition: dict[str, Any] | None = None  # Failed, when it is True
    jobs: int = 0
    problem: str | None = None
    budget_ended: bool = False  # a valid spec's own wall-clock / GPU-hour budget ended it (its Jobs deleted)


@dataclass
class OperatorRun:
    observed: list[Observed]
    alive: bool  # the operator process was still up at the end
    tracebacks: int  # in its log
    pods: int  # the quota keeps trials from running: none


def run_through_the_operator(
    kube: Cluster, api: client.CustomObjectsApi, sample: list[Outcome], tmp_path: Path
) -> OperatorRun:
    batches = _batches(sample)
    spaces = [_quota_namespace(kube, f"fz{os.getpid()}-{i}") for i in range(len(batches))]
    batch_api = client.BatchV1Api(api.api_client)
    observed: list[Observed] = []
    log = tmp_path / "operator.log"
    extra = [arg for ns in spaces[1:] for arg in ("--namespace", ns)]
    with OperatorProcess(kube.kubeconfig, spaces[0], log, args=extra) as op:
        for ns, batch in zip(spaces, batches, strict=True):
            seen = [Observed(o, o.case.doc["metadata"]["name"], ns) for o in batch]
            for s in seen:
                api.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, s.outcome.case.doc)
            _await_outcomes(api, seen)
            time.sleep(2)  # a Job created late for an invalid spec would show now
            for s in seen:
                s.jobs = len(
                    batch_api.list_namespaced_job(ns, label_selector=f"{EXPERIMENT_LABEL}={s.name}").items
                )
                conditions = (
                    api.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, s.name)
                    .get("status", {})
                    .get("conditions", [])
                )
                s.budget_ended = any(
                    c["status"] == "True" and c.get("reason") in BUDGET_ENDS for c in conditions
                )
                s.problem = _judge(s)
            kube.kubectl("delete", "nasexperiments", "--all", "-n", ns, "--wait=false")
            observed += seen
        alive = op.process is not None and op.process.poll() is None
    pods = sum(len(client.CoreV1Api(api.api_client).list_namespaced_pod(ns).items) for ns in spaces)
    return OperatorRun(observed, alive, log.read_text(errors="replace").count("Traceback"), pods)


def _quota_namespace(kube: Cluster, name: str) -> str:
    kube.kubectl("create", "namespace", name)
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-pods", "namespace": name},
        "spec": {"hard": {"pods": "0"}},
    }
    kube.kubectl("apply", "-f", "-", input=json.dumps(quota))
    return name


def _await_outcomes(api: client.CustomObjectsApi, seen: list[Observed]) -> None:
    deadline = time.monotonic() + OUTCOME_SECONDS
    waiting = list(seen)
    while waiting and time.monotonic() < deadline:
        time.sleep(0.5)
        for s in list(waiting):
            status = api.get_namespaced_custom_object(GROUP, VERSION, s.namespace, PLURAL, s.name).get(
                "status", {}
            )
            failed = next((c for c in status.get("conditions", []) if c["type"] == "Failed"), None)
            s.phase = status.get("phase")
            s.condition = failed if failed and failed["status"] == "True" else None
            if s.phase in ("Running", "Succeeded") or s.condition:
                waiting.remove(s)


def _judge(s: Observed) -> str | None:
    """What is wrong with what the operator did, if anything."""
    predicted = s.outcome.operator
    assert predicted is not None
    if predicted.accepted:
        if s.budget_ended:  # e.g. budget.maxDurationSeconds: 1, drawn from the schema
            return None
        if s.phase not in ("Running", "Succeeded") or s.condition:
            return f"valid, but phase {s.phase} and condition {s.condition}"
        if s.jobs == 0:
            return "valid and Running, but no Job was created"
        return None
    if s.jobs:
        return f"invalid ({predicted}), but {s.jobs} Jobs were created"
    if s.condition is None or s.condition.get("reason") != "InvalidSpec":
        return f"invalid ({predicted}), but phase {s.phase} and condition {s.condition}"
    if not named_fields(s.condition.get("message", "")):
        return f"InvalidSpec names no field: {s.condition.get('message')}"
    return None


def _cases(title: str, outcomes: list[Outcome], limit: int = 15) -> str:
    lines = [f"{len(outcomes)} manifests: {title}"]
    for o in outcomes[:limit]:
        lines.append(f"- {o.case.describe()}")
        lines.append(f"  API server: {o.refusal or 'accepted'}")
        lines.append(f"  kubenas:    {o.validate}")
    return "\n".join(lines)


def _report(outcomes: list[Outcome], run: OperatorRun, seconds: float) -> str:
    observed = run.observed
    tried = len(outcomes)
    refused = sum(o.refusal is not None for o in outcomes)
    accepted = [o for o in outcomes if o.refusal is None]
    invalid = sum(1 for o in accepted if o.operator is not None and not o.operator.accepted)
    sample_invalid = [s for s in observed if s.condition and s.condition.get("reason") == "InvalidSpec"]
    rows = [
        ("manifests tried", f"{tried}"),
        ("rejected at apply (API server dry run)", f"{refused} ({refused / tried:.1%})"),
        ("accepted at apply", f"{len(accepted)} ({len(accepted) / tried:.1%})"),
        ("  refused by the operator (InvalidSpec, in process)", f"{invalid} ({invalid / tried:.1%})"),
        ("  valid: the operator would create trials", f"{len(accepted) - invalid}"),
        ("refused by `kubenas validate`", f"{sum(not o.validate.accepted for o in outcomes)}"),
        (
            "API server and models disagree",
            f"{sum((o.refusal is None) != o.models.accepted for o in outcomes)}",
        ),
        ("run through the operator", f"{len(observed)}"),
        ("  InvalidSpec (observed)", f"{len(sample_invalid)}"),
        ("  Running with Jobs (observed)", f"{sum(1 for s in observed if s.jobs and not s.condition)}"),
        ("  wrong outcome", f"{sum(1 for s in observed if s.problem)}"),
        ("operator crashes (exited, tracebacks in its log)", f"{int(not run.alive)}, {run.tracebacks}"),
        ("trial pods created (the quota forbids them)", f"{run.pods}"),
        (
            "Jobs created for invalid specs",
            f"{sum(s.jobs for s in observed if s.outcome.operator and not s.outcome.operator.accepted)}",
        ),
        ("seconds", f"{seconds:.0f}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "manifest fuzzing\n" + "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def test_experiment_names_are_bounded_so_that_children_fit(
    kube: Cluster, custom: client.CustomObjectsApi, namespace: str
) -> None:
    """The CRD refuses a name one character past NAME_LIMIT, naming metadata.name and the rule; at the
    limit, the worst-case Job (<name>-99999-e10000) is one the API server accepts."""

    def doc(name: str) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "kind": "NASExperiment", "metadata": {"name": name}, "spec": {}}

    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, doc("a" * NAME_LIMIT), dry_run="All"
    )
    with pytest.raises(client.ApiException) as refused:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, doc("a" * (NAME_LIMIT + 1)), dry_run="All"
        )
    message = _message(refused.value)
    assert f"metadata.name: Invalid value: must be at most {NAME_LIMIT} characters" in message, message
    problems = validate(doc("a" * (NAME_LIMIT + 1))).problems
    expected = f"metadata.name: must be at most {NAME_LIMIT} characters (got {NAME_LIMIT + 1})"
    assert problems[0].startswith(expected), problems
    job_name = f"{'a' * NAME_LIMIT}-99999-e10000"
    labels = {"job-name": job_name, "batch.kubernetes.io/job-name": job_name}
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name, "labels": labels},
        "spec": {
            "template": {
                "metadata": {"labels": labels},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "t", "image": "x"}]},
            }
        },
    }
    assert len(job_name) + len("-xxxxx") == 63
    kube.kubectl("create", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(job))


# Edges where the API server (Go: RE2, CEL, its JSON decoder) and the models (Python, Rust's regex) are
# most likely to part: whitespace classes, quantities, 64-bit integers, defaults left out, name limits.
EDGES: dict[str, tuple[str, Any]] = {
    "url, ideographic space": ("spec", {"metrics": {"pushgateway": "http://a\u3000b:9091"}}),
    "prefix, no-break space": ("spec", {"storage": {"bucket": "abc", "prefix": "ab\u00a0"}}),
    "image, trailing no-break space": ("spec", {"trialTemplate": {"image": "trainer\u00a0"}}),
    "image, trailing NEL": ("spec", {"trialTemplate": {"image": "trainer\x85"}}),
    "image, trailing \\x1c": ("spec", {"trialTemplate": {"image": "trainer\x1c"}}),
    "image, zero-width space": ("spec", {"trialTemplate": {"image": "trainer\u200b"}}),
    "env name, unicode": ("spec", {"trialTemplate": {"env": [{"name": "\u00c4"}]}}),
    "quantity, Arabic digit": ("spec", {"trialTemplate": {"resources": {"requests": {"cpu": "\u0661"}}}}),
    "quantity, 1e1.5": ("spec", {"trialTemplate": {"resources": {"requests": {"cpu": "1e1.5"}}}}),
    "quantity, 1e400": ("spec", {"trialTemplate": {"resources": {"requests": {"cpu": "1e400"}}}}),
    "quantity, 1.": ("spec", {"trialTemplate": {"resources": {"requests": {"cpu": "1."}}}}),
    "quantity, +.5": ("spec", {"trialTemplate": {"resources": {"requests": {"cpu": "+.5"}}}}),
    "extended, 1000m": ("spec", {"trialTemplate": {"resources": {"limits": {"example.com/fpga": "1000m"}}}}),
    "request 1 = limit 1000m": (
        "spec",
        {"trialTemplate": {"resources": {"requests": {"cpu": 1}, "limits": {"cpu": "1000m"}}}},
    ),
    "hugepages": ("spec", {"trialTemplate": {"resources": {"limits": {"hugepages-2Mi": "2Mi"}}}}),
    "toleration, empty key": (
        "spec",
        {"trialTemplate": {"tolerations": [{"key": "", "operator": "Exists"}]}},
    ),
    "integer 2^63": ("spec", {"budget": {"maxFailedTrials": 2**63}}),
    "integer 2^63 - 1": ("spec", {"budget": {"maxFailedTrials": 2**63 - 1}}),
    "integer written 1e20": ("spec", {"earlyStopping": {"graceEpochs": 1e20}}),
    "integer written 3.0": ("spec", {"budget": {"maxFailedTrials": 3.0}}),
    "fractions 0.7 + 0.2": ("spec", {"training": {"validationFraction": 0.7, "testFraction": 0.2}}),
    "hostPath a/..": ("spec", {"trialTemplate": {"checkpointVolume": {"hostPath": {"path": "a/.."}}}}),
    "dataset x/": ("spec", {"training": {"dataset": "x/"}}),
    "accuracy, default metric, on diabetes": ("spec", {"training": {"dataset": "diabetes"}}),
    "asha, minEpochs = default epochs": ("spec", {"earlyStopping": {"rule": "asha", "minEpochs": 10}}),
    "name, 44": ("name", "a" * 44),
    "name, 45": ("name", "a" * 45),
    "name, dot": ("name", "a.b"),
}


@pytest.mark.parametrize("edge", sorted(EDGES))
def test_edges_get_the_same_verdict_from_the_api_server_and_the_models(
    custom: client.CustomObjectsApi, namespace: str, edge: str
) -> None:
    where, value = EDGES[edge]
    doc: dict[str, Any] = {"apiVersion": API_VERSION, "kind": "NASExperiment", "metadata": {"name": "edge"}}
    doc["spec"] = value if where == "spec" else {}
    if where == "name":
        doc["metadata"]["name"] = value
    outcome = dry_run(custom, namespace, Case(doc, edge))
    assert (outcome.refusal is None) == outcome.models.accepted, (outcome.refusal, outcome.models)
