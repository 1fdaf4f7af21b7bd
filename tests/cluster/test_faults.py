"""Faults a shared cluster brings: the API server refusing a child (here a ResourceQuota), a budget changed
on a running experiment."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import get_json, wait_for
from .fixtures import Cluster
from .operator_process import OperatorProcess
from .test_operator import apply, condition, diagnostics, experiment, finished

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def warnings(kube: Cluster, namespace: str, reason: str) -> list[dict[str, Any]]:
    events = get_json(kube, "events", "-n", namespace, "--field-selector", f"reason={reason}")["items"]
    return [e for e in events if e["type"] == "Warning"]


def test_a_refused_job_is_reported_once_retried_with_backoff_and_the_experiment_recovers(
    kube: Cluster, namespace: str, tmp_path: Path
) -> None:
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-jobs", "namespace": namespace},
        "spec": {"hard": {"count/jobs.batch": "0"}},
    }
    kube.kubectl("apply", "-f", "-", input=yaml.safe_dump(quota))
    wait_for(  # the quota controller computes its status; until then admission does not enforce it
        lambda: get_json(kube, "resourcequota", "no-jobs", "-n", namespace).get("status", {}).get("hard"),
        30,
        "the quota's status",
    )
    with OperatorProcess(kube.kubeconfig, namespace, tmp_path / "operator.log") as operator:
        apply(kube, namespace, experiment("quota", max_trials=2, parallel=1, epochs=1))

        def refused() -> dict[str, Any] | None:
            return condition(get_json(kube, "nasx", "quota", "-n", namespace), "CreateFailure")

        failure = wait_for(refused, 60, "CreateFailure", lambda: diagnostics(kube, namespace, operator))
        assert failure["status"] == "True" and failure["reason"] == "QuotaExceeded", failure
        assert (
            failure["message"].startswith("Job quota-0: ") and "exceeded quota: no-jobs" in failure["message"]
        )
        time.sleep(20)  # three attempts' worth (5 s, 10 s): still one event, no Job, not "Running"
        status = get_json(kube, "nasx", "quota", "-n", namespace)["status"]
        assert status["phase"] == "Pending" and status["backoff"]["attempts"] >= 2, status
        running = condition({"status": status}, "Running")
        assert running is not None and (running["status"], running["reason"]) == ("False", "CreateFailure")
        assert len(warnings(kube, namespace, "QuotaExceeded")) == 1
        assert get_json(kube, "jobs", "-n", namespace)["items"] == []
        assert len(get_json(kube, "nastrials", "-n", namespace)["items"]) == 1  # recorded once, kept

        kube.kubectl("delete", "resourcequota", "no-jobs", "-n", namespace)
        done = wait_for(
            lambda: finished(kube, namespace, "quota"),
            300,
            "recovery",
            lambda: diagnostics(kube, namespace, operator),
        )
    assert done["status"]["phase"] == "Succeeded" and "backoff" not in done["status"]
    assert condition(done, "CreateFailure") is None
    assert sorted(t["metadata"]["name"] for t in get_json(kube, "nastrials", "-n", namespace)["items"]) == [
        "quota-0",
        "quota-1",
    ]


def test_a_budget_changed_on_a_running_experiment_keeps_its_trials_and_applies(
    kube: Cluster, namespace: str, tmp_path: Path
) -> None:
    with OperatorProcess(kube.kubeconfig, namespace, tmp_path / "operator.log") as operator:
        apply(kube, namespace, experiment("grow", max_trials=3, parallel=2, epochs=4))

        def two_finished() -> bool:
            items = get_json(kube, "nastrials", "-n", namespace)["items"]
            return sum(t.get("status", {}).get("phase") == "Succeeded" for t in items) >= 2

        wait_for(two_finished, 300, "two finished trials", lambda: diagnostics(kube, namespace, operator))
        before = {t["metadata"]["name"]: t for t in get_json(kube, "nastrials", "-n", namespace)["items"]}
        patch = '{"spec": {"budget": {"maxTrials": 5, "parallelTrials": 1}}}'
        kube.kubectl("patch", "nasx", "grow", "-n", namespace, "--type=merge", "-p", patch)
        seen_parallel = 0
        deadline = time.monotonic() + 400
        while not finished(kube, namespace, "grow"):
            items = get_json(kube, "nastrials", "-n", namespace)["items"]
            created_after = [t for t in items if t["metadata"]["name"] not in before]
            if created_after:  # once the new budget applies, one at a time
                seen_parallel = max(
                    seen_parallel, sum(t.get("status", {}).get("phase") == "Running" for t in items)
                )
            assert time.monotonic() < deadline, diagnostics(kube, namespace, operator)
            time.sleep(0.5)
        done = get_json(kube, "nasx", "grow", "-n", namespace)
    items = {t["metadata"]["name"]: t for t in get_json(kube, "nastrials", "-n", namespace)["items"]}
    assert sorted(items) == [f"grow-{i}" for i in range(5)]  # the new maxTrials
    for name, trial in before.items():  # finished trials were kept as they were
        if trial["status"]["phase"] == "Succeeded":
            assert items[name]["status"] == trial["status"]
    assert seen_parallel <= 1
    assert done["status"]["phase"] == "Succeeded" and done["status"]["observedGeneration"] == 2


def test_an_evicted_trial_resumes_its_checkpoint_and_its_restarts_are_counted(
    kube: Cluster, namespace: str, tmp_path: Path
) -> None:
    """A pod evicted mid-training (a drain, a preemption) is replaced by the Job; the new pod resumes the
    trial's checkpoint: the trial neither fails nor starts over, and the restart is counted."""
    from kubernetes import client, config

    config.load_kube_config(str(kube.kubeconfig))
    core = client.CoreV1Api()
    volume = tmp_path / "checkpoints"
    doc = experiment("evict", max_trials=1, parallel=1, epochs=30)
    doc["spec"]["searchSpace"]["hyperparameters"]["batchSize"] = {"values": [8]}  # a few seconds a trial
    doc["spec"]["trialTemplate"]["checkpointVolume"] = {"hostPath": {"path": str(volume)}}
    metrics = volume / namespace / "evict" / "evict-0" / "metrics.jsonl"
    with OperatorProcess(kube.kubeconfig, namespace, tmp_path / "operator.log") as operator:
        apply(kube, namespace, doc)
        wait_for(  # a few epochs in, with a checkpoint on the volume
            lambda: metrics.exists() and len(metrics.read_text().splitlines()) >= 3,
            180,
            "three epochs",
            lambda: diagnostics(kube, namespace, operator),
        )
        [pod] = get_json(kube, "pods", "-n", namespace, "-l", "job-name=evict-0")["items"]
        evicted = pod["metadata"]["name"]
        eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name=evicted, namespace=namespace))
        core.create_namespaced_pod_eviction(evicted, namespace, eviction)
        done = wait_for(
            lambda: finished(kube, namespace, "evict"),
            300,
            "the experiment",
            lambda: diagnostics(kube, namespace, operator),
        )
    assert done["status"]["phase"] == "Succeeded", done["status"]
    [trial] = get_json(kube, "nastrials", "-n", namespace)["items"]
    assert trial["status"]["phase"] == "Succeeded" and trial["status"]["epochs"] == 30
    [job] = get_json(kube, "jobs", "-n", namespace)["items"]
    assert trial["status"].get("restarts") == 1, (trial["status"], job["status"])
    assert job["status"]["failed"] == 1 and job["status"]["succeeded"] == 1
    rows = [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()]
    assert rows == list(range(1, 31))  # one unbroken curve: nothing trained twice, nothing lost
    [replacement] = get_json(kube, "pods", "-n", namespace, "-l", "job-name=evict-0")["items"]
    assert replacement["metadata"]["name"] != evicted
    assert (
        kube.agent is None
        or "resumed from" in kube.agent.logs(namespace, replacement["metadata"]["name"])["trainer"]
    )
    restarted = warnings(kube, namespace, "TrialRestarted")
    assert len(restarted) == 1 and restarted[0]["message"].startswith("evict-0: a pod ended early")
