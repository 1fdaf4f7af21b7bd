"""GPU clusters as they are run, on the real control plane: Kueue's queueing and experiment budgets.

No Kueue controller runs here; its admission is what it does to a Job, unsuspending it, and the tests
do exactly that with a patch. Trials are the stand-in trainer (tests/cluster/stand_in_trainer.py: a valid
result, then a sleep), so the tests time queues and budgets, not model training.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import get_json, wait_for
from .fixtures import Cluster, stand_in_path
from .operator_process import OperatorProcess
from .test_operator import apply, condition, diagnostics, finished

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


def stand_in_experiment(
    name: str, trials: int, seconds: float, path: str, template: dict[str, Any], **budget: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "kubenas.dev/v1alpha1",
        "kind": "NASExperiment",
        "metadata": {"name": name},
        "spec": {
            "searchSpace": {
                "layers": {"count": {"min": 1, "max": 3}, "types": ["dense"], "units": {"values": [32, 64]}},
                "hyperparameters": {"learningRate": {"min": 0.0001, "max": 0.1, "log": True}},
            },
            "strategy": {"name": "random", "seed": 5},
            "budget": {"maxTrials": trials, "parallelTrials": trials, "maxFailedTrials": 0, **budget},
            "training": {"dataset": "digits", "epochs": 2},
            "trialTemplate": {
                "image": "stand-in",  # the node agent ignores images; PATH finds the stand-in
                "env": [
                    {"name": "KUBENAS_STAND_IN_SECONDS", "value": f"{seconds:g}"},
                    {"name": "PATH", "value": path},
                ],
                **template,
            },
        },
    }


def trials_of(kube: Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    return {t["metadata"]["name"]: t for t in get_json(kube, "nastrials", "-n", namespace)["items"]}


def jobs_of(kube: Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    return {j["metadata"]["name"]: j for j in get_json(kube, "jobs", "-n", namespace)["items"]}


def pods_of(kube: Cluster, namespace: str, job: str) -> list[dict[str, Any]]:
    return list(get_json(kube, "pods", "-n", namespace, "-l", f"job-name={job}")["items"])


def queued(kube: Cluster, namespace: str, name: str) -> int:
    status = get_json(kube, "nasexperiment", name, "-n", namespace).get("status") or {}
    return int((status.get("trials") or {}).get("queued") or 0)


def admit(kube: Cluster, namespace: str, job: str) -> None:
    """What Kueue does when the job's workload fits its ClusterQueue's quota."""
    kube.kubectl("patch", "job", job, "-n", namespace, "--type=merge", "-p", '{"spec": {"suspend": false}}')


def test_queued_trials_wait_suspended_until_admitted_then_run(
    kube: Cluster, namespace: str, tmp_path: Path
) -> None:
    template = {
        "queueName": "team-a",
        "resources": {"requests": {"cpu": "10m"}, "limits": {"nvidia.com/gpu": 1}},
    }
    doc = stand_in_experiment("kq", 2, 2, stand_in_path(tmp_path), template)
    with OperatorProcess(kube.kubeconfig, namespace, tmp_path / "operator.log") as operator:
        on_timeout = lambda: diagnostics(kube, namespace, operator)  # noqa: E731
        apply(kube, namespace, doc)
        wait_for(lambda: queued(kube, namespace, "kq") == 2, 120, "two queued trials", on_timeout)
        created = time.monotonic()
        jobs = jobs_of(kube, namespace)
        assert sorted(jobs) == ["kq-0", "kq-1"]
        for job in jobs.values():
            assert job["spec"]["suspend"] is True
            assert job["metadata"]["labels"][QUEUE_LABEL] == "team-a"
        for trial in trials_of(kube, namespace).values():
            assert (trial["status"]["phase"], trial["status"]["reason"]) == ("Pending", "Queued")
            assert "startTime" not in trial["status"]
        # passes go by (interval 1 s): the operator leaves the suspended Jobs alone and no pod runs
        time.sleep(6)
        for name, job in jobs_of(kube, namespace).items():
            assert job["spec"]["suspend"] is True and job["metadata"]["generation"] == 1, name
            assert pods_of(kube, namespace, name) == []
        assert queued(kube, namespace, "kq") == 2
        wide = kube.kubectl("get", "nasx", "kq", "-n", namespace, "-o", "wide").stdout.splitlines()
        column = wide[0].index("QUEUED")  # a printer column (BEST is still empty: split by position)
        assert wide[1][column:].split()[0] == "2", wide

        waited = time.monotonic() - created
        admit(kube, namespace, "kq-0")
        first = wait_for(
            lambda: (
                trials_of(kube, namespace)["kq-0"]["status"]["phase"] == "Succeeded"
                and trials_of(kube, namespace)["kq-0"]
            ),
            120,
            "the admitted trial to succeed",
            on_timeout,
        )
        assert queued(kube, namespace, "kq") == 1 and pods_of(kube, namespace, "kq-1") == []
        assert jobs_of(kube, namespace)["kq-1"]["spec"]["suspend"] is True
        admit(kube, namespace, "kq-1")
        done = wait_for(lambda: finished(kube, namespace, "kq"), 120, "the experiment to finish", on_timeout)

    assert condition(done, "Succeeded")["reason"] == "MaxTrialsReached"  # type: ignore[index]
    assert done["status"]["trials"]["queued"] == 0 and done["status"]["gpuHours"] == 0.0
    # its run time is the time it ran after admission, not the time it waited in the queue
    assert 0 < first["status"]["runSeconds"] < waited, (first["status"], waited)
    events = get_json(kube, "events", "-n", namespace, "--field-selector", "reason=TrialQueued")["items"]
    assert sorted(e["message"].split(":")[0] for e in events) == ["kq-0", "kq-1"]
    interrupted = get_json(kube, "events", "-n", namespace, "--field-selector", "reason=TrialInterrupted")
    assert interrupted["items"] == []


def test_the_wall_clock_budget_ends_an_experiment_with_its_reason(
    kube: Cluster, namespace: str, tmp_path: Path
) -> None:
    template = {"resources": {"requests": {"cpu": "10m"}}}
    doc = stand_in_experiment("kb", 2, 600, stand_in_path(tmp_path), template, maxDurationSeconds=6)
    with OperatorProcess(kube.kubeconfig, namespace, tmp_path / "operator.log") as operator:
        on_timeout = lambda: diagnostics(kube, namespace, operator)  # noqa: E731
        apply(kube, namespace, doc)
        wait_for(
            lambda: (
                sum(
                    t.get("status", {}).get("phase") == "Running" for t in trials_of(kube, namespace).values()
                )
                == 2
            ),
            120,
            "two running trials",
            on_timeout,
        )
        done = wait_for(lambda: finished(kube, namespace, "kb"), 120, "the budget to end it", on_timeout)
        wait_for(lambda: not jobs_of(kube, namespace), 60, "the stopped trials' Jobs to go", on_timeout)

    ended = condition(done, "Failed")
    assert ended is not None and ended["reason"] == "WallClockBudgetExhausted", done["status"]
    assert "budget.maxDurationSeconds is 6; no trial succeeded" in ended["message"]
    assert done["status"]["trials"]["created"] == 2 and done["status"]["trials"]["stopped"] == 2
    for trial in trials_of(kube, namespace).values():
        assert trial["status"]["phase"] == "Stopped"
        assert trial["status"]["message"] == "experiment ended: WallClockBudgetExhausted"
    events = get_json(kube, "events", "-n", namespace, "--field-selector", "reason=ExperimentFailed")["items"]
    assert [e["message"].split(":")[0] for e in events] == ["WallClockBudgetExhausted"]
    assert "gpuHours" not in done["status"]  # no GPU requested, no GPU budget: nothing to count
