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


def apply(kube: Cluster, obj: dict[str, Any]) -> None:
    kube.kubectl(
        "apply",
        "-n",
        NS,
        "-f",
        "-",
        input=json.dumps({**obj, "metadata": {**obj["metadata"], "namespace": NS}}),
    )


def secret(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}


PRINT_ENV = (
    "import json\nopen(os.environ['KUBENAS_TERMINATION_LOG'], 'w').write(json.dumps(dict(os.environ)))"
)


def test_env_from_secrets_and_config_maps(kube: Cluster) -> None:
    apply(kube, secret("creds", user="ada", password="pa$(ss) word"))
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings"},
        "data": {"mode": "fast"},
    }
    apply(kube, config)
    env = [
        {"name": "USER", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}}},
        {"name": "GREETING", "value": "hi $(USER)"},  # expands a value that came from the Secret
        {"name": "NONE", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nope", "optional": True}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
    ]
    env_from = [
        {"secretRef": {"name": "creds"}, "prefix": "CREDS_"},
        {"secretRef": {"name": "absent", "optional": True}},
        {"configMapRef": {"name": "settings"}},
    ]
    create_job(kube, "secrets", PRINT_ENV, env=env, envFrom=env_from)
    kube.kubectl("wait", "-n", NS, "--for=condition=Complete", "job/secrets", "--timeout=60s")
    (pod,) = job_pods(kube, "secrets")
    seen = json.loads(terminated_state(pod)["message"])
    assert {k: seen.get(k) for k in ("USER", "GREETING", "MODE", "CREDS_user", "CREDS_password", "mode")} == {
        "USER": "ada",
        "GREETING": "hi ada",
        "MODE": "fast",
        "CREDS_user": "ada",
        "CREDS_password": "pa$(ss) word",  # a Secret's value is never expanded
        "mode": "fast",
    }
    assert "NONE" not in seen


def waiting(kube: Cluster, job: str, message: str) -> Callable[[], Any]:
    """A probe for a pod of `job` whose container waits with `message`."""

    def probe() -> Any:
        for pod in job_pods(kube, job):
            state = (pod["status"].get("containerStatuses") or [{}])[0].get("state", {})
            if state.get("waiting", {}).get("message") == message:
                return pod
        return None

    return probe


def test_missing_secret_keeps_the_pod_waiting_until_it_appears(kube: Cluster) -> None:
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "later", "key": "token"}}}]
    create_job(kube, "waits", PRINT_ENV, env=env)
    pod = wait_for("CreateContainerConfigError", waiting(kube, "waits", 'secret "later" not found'))
    assert pod["status"]["phase"] == "Pending"
    assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ContainersNotReady")
    apply(kube, secret("later", other="x"))  # the Secret, but not the key
    wait_for("the missing key", waiting(kube, "waits", f"couldn't find key token in Secret {NS}/later"))
    apply(kube, secret("later", token="s3cret"))
    kube.kubectl("wait", "-n", NS, "--for=condition=Complete", "job/waits", "--timeout=60s")
    (pod,) = job_pods(kube, "waits")
    assert list(pod["status"]["containerStatuses"][0]["state"]) == ["terminated"]  # no longer waiting
    assert json.loads(terminated_state(pod)["message"])["TOKEN"] == "s3cret"


def test_a_pod_waiting_for_a_config_map_can_be_deleted(kube: Cluster) -> None:
    env_from = [{"configMapRef": {"name": "never"}}]
    create_job(kube, "abandoned", PRINT_ENV, envFrom=env_from)
    wait_for("CreateContainerConfigError", waiting(kube, "abandoned", 'configmap "never" not found'))
    kube.kubectl("delete", "-n", NS, "job/abandoned", "--cascade=background")
    wait_for("the pod to go", lambda: job_pods(kube, "abandoned") == [] or None)
