"""High availability on the real control plane: two operator replicas, one Lease, exactly one reconciles.

Trials are the stand-in trainer (tests/cluster/stand_in_trainer.py: a valid result, then a sleep), so
the experiment lasts long enough to kill its leader mid-run without training models on the test machine.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubenas.api import NASExperiment
from kubenas.k8s.handlers import PassQueue, Request
from kubenas.k8s.leader import ElectionConfig, LeaderElector
from kubenas.k8s.probe import serve_standby_liveness
from kubenas.strategies import make_strategy
from kubernetes import client, config

from tests.services.net import free_port

from .conftest import get_json, wait_for
from .fixtures import Cluster, stand_in_path
from .operator_process import OperatorProcess
from .test_operator import apply, finished

LEASE = "kubenas-operator"
# A line the operator logs only once it leads: kopf's start and everything after it.
LEADING = "acquired Lease"


def stand_in_experiment(
    name: str, max_trials: int, parallel: int, seconds: float, path: str
) -> dict[str, Any]:
    """A seeded random search whose trials each take `seconds` (the stand-in's sleep)."""
    return {
        "apiVersion": "kubenas.dev/v1alpha1",
        "kind": "NASExperiment",
        "metadata": {"name": name},
        "spec": {
            "objective": {"metric": "accuracy"},
            "searchSpace": {
                "layers": {"count": {"min": 1, "max": 3}, "types": ["dense"], "units": {"values": [32, 64]}},
                "hyperparameters": {"learningRate": {"min": 0.0001, "max": 0.1, "log": True}},
            },
            "strategy": {"name": "random", "seed": 11},
            "budget": {"maxTrials": max_trials, "parallelTrials": parallel, "maxFailedTrials": 0},
            "training": {"dataset": "digits", "epochs": 2},
            "trialTemplate": {
                "image": "stand-in",  # the node agent ignores images; PATH finds the stand-in
                "resources": {"requests": {"cpu": "10m"}},
                "env": [
                    {"name": "KUBENAS_STAND_IN_SECONDS", "value": f"{seconds:g}"},
                    {"name": "PATH", "value": path},
                ],
            },
        },
    }


def holder(kube: Cluster, namespace: str) -> str | None:
    """The Lease's holderIdentity ("" once released), None while there is no Lease."""
    got = kube.kubectl("get", "lease", LEASE, "-n", namespace, "-o", "json", check=False)
    if got.returncode != 0:
        return None
    return str(json.loads(got.stdout).get("spec", {}).get("holderIdentity") or "")


def lines_before_leading(log: Path) -> list[str]:
    """The replica's log lines before it took the Lease (all of them if it never did)."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    end = next((i for i, line in enumerate(lines) if LEADING in line), len(lines))
    return lines[:end]


def candidate(identity: str, namespace: str, name: str, lease: float, renew: float) -> LeaderElector:
    """An elector with short periods (not an operator: the election alone)."""
    settings = ElectionConfig(namespace, name, identity, lease, renew_deadline=renew, retry_period=renew / 4)
    return LeaderElector(settings, client.CoordinationV1Api())


def lease_spec(api: client.CoordinationV1Api, name: str, namespace: str) -> client.V1LeaseSpec:
    spec = api.read_namespaced_lease(name, namespace).spec
    assert spec is not None
    return spec


def ha_diagnostics(kube: Cluster, namespace: str, *replicas: OperatorProcess) -> str:
    got = kube.kubectl("get", "nasx,nast,jobs,pods,lease", "-n", namespace, "-o", "wide", check=False).stdout
    return got + "".join(f"\n--- {r.identity} ---\n{r.tail(30)}" for r in replicas)


@pytest.mark.cluster
@pytest.mark.slow
def test_leader_killed_mid_experiment_the_standby_finishes_it_without_duplicates(
    kube: Cluster, namespace: str, tmp_path: Path
) -> None:
    first = OperatorProcess(kube.kubeconfig, namespace, tmp_path / "first.log")
    second = OperatorProcess(kube.kubeconfig, namespace, tmp_path / "second.log")
    replicas = (first, second)
    on_timeout = lambda: ha_diagnostics(kube, namespace, *replicas)  # noqa: E731
    doc = stand_in_experiment("ha", max_trials=6, parallel=2, seconds=4, path=stand_in_path(tmp_path))
    try:
        first.start()
        wait_for(
            lambda: holder(kube, namespace) == first.identity, 60, "the first replica to lead", on_timeout
        )
        second.start()
        wait_for(lambda: "standing by" in second.tail(), 60, "the second replica to stand by", on_timeout)
        apply(kube, namespace, doc)
        wait_for(
            lambda: len(get_json(kube, "nastrials", "-n", namespace)["items"]) >= 2,
            120,
            "trials from the leader",
            on_timeout,
        )
        assert holder(kube, namespace) == first.identity  # the standby never took it while both ran
        assert not finished(kube, namespace, "ha"), "the experiment ended before the kill: make it longer"
        before_kill = second.log.read_text(errors="replace")
        first.kill()
        wait_for(
            lambda: holder(kube, namespace) == second.identity, 60, "the standby to take over", on_timeout
        )
        done = wait_for(lambda: finished(kube, namespace, "ha"), 300, "the experiment to finish", on_timeout)
    finally:
        for replica in replicas:
            replica.stop()

    # The standby stood by: up to the kill it logged nothing but the election (no kopf, no pass, no event).
    assert LEADING not in before_kill
    standby_lines = lines_before_leading(second.log)
    assert standby_lines, "the standby's log is empty"
    strangers = [line for line in standby_lines if not re.search(r"kubenas\.k8s\.leader|^\s*$", line)]
    assert not strangers, strangers

    assert done["status"]["phase"] == "Succeeded", done["status"]
    trials = get_json(kube, "nastrials", "-n", namespace)["items"]
    jobs = get_json(kube, "jobs", "-n", namespace)["items"]
    names = sorted(t["metadata"]["name"] for t in trials)
    assert names == sorted(f"ha-{i}" for i in range(6))  # none created twice, none skipped
    assert sorted(t["spec"]["index"] for t in trials) == list(range(6))
    assert sorted(j["metadata"]["name"] for j in jobs) == names  # one Job per trial (one segment each)
    spec = NASExperiment.model_validate({**doc, "metadata": {"name": "ha"}}).spec
    expected = [c.key() for c in make_strategy(spec).ask([], 6)]
    assert [t["spec"]["candidateKey"] for t in sorted(trials, key=lambda t: t["spec"]["index"])] == expected
    assert all(t["status"]["phase"] == "Succeeded" for t in trials)


@pytest.mark.cluster
@pytest.mark.slow
def test_a_leader_stopped_gracefully_releases_the_lease(
    kube: Cluster, namespace: str, tmp_path: Path
) -> None:
    replica = OperatorProcess(kube.kubeconfig, namespace, tmp_path / "operator.log")
    with replica:
        wait_for(lambda: holder(kube, namespace) == replica.identity, 60, "the replica to lead", replica.tail)
    assert replica.process is not None and replica.process.returncode == 0, replica.tail()
    assert holder(kube, namespace) == ""  # released on SIGTERM: a standby takes it at its next try


@pytest.mark.cluster
def test_two_candidates_one_holder_and_release_hands_over(kube: Cluster, namespace: str) -> None:
    config.load_kube_config(config_file=str(kube.kubeconfig))  # type: ignore[no-untyped-call]
    api = client.CoordinationV1Api()
    one = candidate("one", namespace, "pair", lease=30, renew=2)
    two = candidate("two", namespace, "pair", lease=30, renew=2)
    assert one.try_acquire_or_renew() and one.is_leader()  # no Lease yet: created at once
    assert not two.try_acquire_or_renew() and not two.is_leader()  # held, not expired
    assert one.try_acquire_or_renew()  # renewing
    lease = lease_spec(api, "pair", namespace)
    assert lease.holder_identity == "one" and lease.lease_duration_seconds == 30
    one.release()
    assert not one.is_leader()
    assert two.try_acquire_or_renew() and two.is_leader()  # released: taken at once, no expiry wait
    lease = lease_spec(api, "pair", namespace)
    assert lease.holder_identity == "two" and lease.lease_transitions == 1


@pytest.mark.cluster
def test_an_expired_lease_is_taken_over(kube: Cluster, namespace: str) -> None:
    config.load_kube_config(config_file=str(kube.kubeconfig))  # type: ignore[no-untyped-call]
    api = client.CoordinationV1Api()
    gone = candidate("gone", namespace, "expiry", lease=2, renew=1)
    standby = candidate("standby", namespace, "expiry", lease=2, renew=1)
    assert gone.try_acquire_or_renew()  # then it dies: no renewal, no release
    assert not standby.try_acquire_or_renew()  # first sight of the record starts its clock
    time.sleep(2.2)
    assert not gone.is_leader()  # past its renew deadline it no longer counts itself leader
    assert standby.try_acquire_or_renew()
    assert lease_spec(api, "expiry", namespace).holder_identity == "standby"


@pytest.mark.cluster
def test_a_leader_that_cannot_renew_stops_leading(kube: Cluster, namespace: str) -> None:
    """Another candidate holds the Lease now (e.g. after a partition): renewals fail, and within the
    renew deadline the leader stops counting itself leader and calls on_lost."""
    config.load_kube_config(config_file=str(kube.kubeconfig))  # type: ignore[no-untyped-call]
    api = client.CoordinationV1Api()
    lost = threading.Event()
    leader = candidate("leader", namespace, "usurped", lease=30, renew=1)
    leader.on_lost = lost.set
    assert leader.acquire()
    leader.start_renewing()
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    api.patch_namespaced_lease(
        "usurped", namespace, {"spec": {"holderIdentity": "usurper", "renewTime": now}}
    )
    wait_for(lost.is_set, 30, "on_lost")
    assert not leader.is_leader()
    assert lease_spec(api, "usurped", namespace).holder_identity == "usurper"  # it did not take it back


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (
            {"lease_duration": 10, "renew_deadline": 10},
            "lease_duration (10) must be greater than renew_deadline",
        ),
        (
            {"renew_deadline": 2, "retry_period": 2},
            "renew_deadline (2) must be greater than 1.2 x retry_period",
        ),
        ({"namespace": ""}, "name and namespace must not be empty"),
    ],
)
def test_bad_election_settings_name_the_values(settings: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=re.escape(named)):
        ElectionConfig(**{"namespace": "ns", **settings})


def test_the_standby_answers_its_liveness_probe_and_frees_the_port_for_kopf() -> None:
    port = free_port()
    stop = serve_standby_liveness(f"http://127.0.0.1:{port}/healthz")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            assert answer.status == 200 and json.loads(answer.read()) == {"standby": True}
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=5)
    finally:
        stop()
    with socket.socket() as again:  # kopf's own endpoint binds the same address next
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))


def test_a_stopped_pass_queue_lets_the_running_pass_finish_and_starts_no_other() -> None:
    """What a graceful stop relies on before it releases the Lease."""
    started, release, ran = threading.Event(), threading.Event(), []

    def run(key: tuple[str, str], _: Request) -> None:
        ran.append(key)
        started.set()
        release.wait(10)

    queue = PassQueue(run, workers=1)
    queue.request(("ns", "a"), Request(True, True))
    assert started.wait(10)
    queue.request(("ns", "b"), Request(True, True))  # queued behind a
    assert not queue.stop(timeout=0.2)  # a still runs
    release.set()
    assert queue.stop(timeout=10)
    queue.request(("ns", "c"), Request(True, True))
    time.sleep(0.2)
    assert ran == [("ns", "a")]
