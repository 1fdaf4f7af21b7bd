"""Self-test of the cluster harness: real apiserver, scheduler, Job controller and GC."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from tests.cluster.fixtures import Cluster, cluster

pytestmark = pytest.mark.cluster
T = TypeVar("T")
NS = "harness"


@pytest.fixture(scope="module")
def kube() -> Iterator[Cluster]:
    """A cluster of its own (overrides conftest's ``kube``: no CRDs needed), namespace ``harness``."""
    with cluster() as c:
        if c.agent is None:
            pytest.skip("the harness self-test needs the local node agent")
        c.kubectl("create", "namespace", NS)
        wait_for("the default ServiceAccount", lambda: get(c, "serviceaccounts", "default") or None)
        yield c
        c.kubectl("delete", "namespace", NS, "--timeout=60s")  # namespace controller + agent


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while (value := probe()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)
    return value


def get(kube: Cluster, *args: str) -> Any:
    done = kube.kubectl("get", "-n", NS, "-o", "json", *args, check=False)
    return json.loads(done.stdout) if done.returncode == 0 else None


def create_job(kube: Cluster, name: str, code: str, gpus: int = 1, **container: Any) -> None:
    """A one-pod Job running Python ``code`` (``os`` and ``time`` imported)."""
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "python:3.11",  # ignored by the node agent
                            "command": [sys.executable, "-c", f"import os, time\n{code}"],
                            "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                            **container,
                        }
                    ],
                }
            },
        },
    }
    kube.kubectl("create", "-f", "-", input=json.dumps(job))


def job_pods(kube: Cluster, job: str) -> list[Any]:
    return list(get(kube, "pods", "-l", f"job-name={job}")["items"])


def terminated_state(pod: Any) -> Any:
    return pod["status"]["containerStatuses"][0]["state"]["terminated"]


def test_job_completes_with_termination_message(kube: Cluster) -> None:
    create_job(kube, "hello", "open(os.environ['KUBENAS_TERMINATION_LOG'], 'w').write('hello')")
    kube.kubectl("wait", "-n", NS, "--for=condition=Complete", "job/hello", "--timeout=60s")
    (pod,) = job_pods(kube, "hello")
    assert pod["status"]["phase"] == "Succeeded"
    state = terminated_state(pod)
    assert (state["exitCode"], state["reason"], state["message"]) == (0, "Completed", "hello")


def test_failing_job_reports_exit_code_and_log_fallback(kube: Cluster) -> None:
    create_job(
        kube, "boom", "print('boom')\nraise SystemExit(3)", terminationMessagePolicy="FallbackToLogsOnError"
    )
    kube.kubectl("wait", "-n", NS, "--for=condition=Failed", "job/boom", "--timeout=60s")
    (pod,) = job_pods(kube, "boom")
    assert pod["status"]["phase"] == "Failed"
    state = terminated_state(pod)
    assert (state["exitCode"], state["reason"], state["message"]) == (3, "Error", "boom")


def test_too_many_gpus_stays_unscheduled(kube: Cluster) -> None:
    create_job(kube, "greedy", "pass", gpus=5)  # the node has 4

    def unschedulable() -> Any:
        for pod in job_pods(kube, "greedy"):
            for cond in pod["status"].get("conditions", []):
                if cond["type"] == "PodScheduled" and cond.get("reason") == "Unschedulable":
                    return cond
        return None

    cond = wait_for("PodScheduled=False/Unschedulable", unschedulable)
    assert cond["status"] == "False"
    assert "Insufficient nvidia.com/gpu" in cond["message"]


def test_background_deletion_kills_and_removes_pods(kube: Cluster) -> None:
    create_job(kube, "sleeper", "open('pid', 'w').write(str(os.getpid()))\ntime.sleep(600)")

    def running_pod() -> Any:
        pods = [p for p in job_pods(kube, "sleeper") if p["status"].get("phase") == "Running"]
        return pods[0] if pods else None

    pod = wait_for("a running sleeper pod", running_pod)
    assert kube.agent is not None
    pid_file = kube.agent.pod_dir(NS, pod["metadata"]["name"]) / "work" / "pid"
    pid = int(wait_for("the pid file", lambda: (pid_file.exists() and pid_file.read_text()) or None))
    kube.kubectl("delete", "-n", NS, "job/sleeper", "--cascade=background")
    wait_for("the garbage collector to delete the pods", lambda: job_pods(kube, "sleeper") == [] or None)
    with pytest.raises(ProcessLookupError):  # the agent killed it before finishing the deletion
        os.kill(pid, 0)
