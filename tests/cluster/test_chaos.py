"""Chaos on the real control plane: the operator SIGKILLed 20 times at seeded random moments while random,
ASHA, PBT and MIHA experiments run at once, and the kube-apiserver and etcd restarted mid-experiment.
Every experiment must end with exactly its trials, no segment trained twice, no result lost, and
status.best equal to the best trial's own report.

KUBENAS_CHAOS_SEED picks the moments (printed, to reproduce a run); KUBENAS_CHAOS_KILLS the number of kills.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import get_json, wait_for
from .fixtures import Cluster
from .operator_process import OperatorProcess
from .test_operator import apply, diagnostics, experiment, finished

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
SEED = int(os.environ.get("KUBENAS_CHAOS_SEED", "20261203"))
KILLS = int(os.environ.get("KUBENAS_CHAOS_KILLS", "20"))
ASHA = {"rule": "asha", "minEpochs": 1, "reductionFactor": 3}
PBT = {"name": "pbt", "seed": 2, "settings": {"populationSize": 2, "interval": 1}}
MIHA = {
    "name": "miha",
    "seed": 4,
    "settings": {"runUpEpochs": 1, "cycles": 1, "populationSize": 2, "cycleEpochs": 1, "continueEpochs": 1},
}
# name -> (the experiment, how many trials it must end with)
CHAOS: dict[str, tuple[dict[str, Any], int]] = {
    "rand": (experiment("rand", max_trials=4, parallel=2, epochs=3), 4),
    "asha": (experiment("asha", max_trials=4, parallel=2, epochs=9, earlyStopping=ASHA), 4),
    "pbt": (experiment("pbt", max_trials=4, parallel=2, epochs=2, strategy=PBT), 4),
    "miha": (experiment("miha", max_trials=5, parallel=2, epochs=4, strategy=MIHA), 5),
}


def with_volume(doc: dict[str, Any], volume: Path) -> dict[str, Any]:
    doc["spec"]["trialTemplate"]["checkpointVolume"] = {"hostPath": {"path": str(volume)}}
    return doc


def check_nothing_lost(kube: Cluster, namespace: str, name: str, count: int, volume: Path | None) -> None:
    """Exactly `count` trials, each segment run by one pod, every result kept, status.best the best."""
    done = get_json(kube, "nasx", name, "-n", namespace)
    assert done["status"]["phase"] == "Succeeded", (name, done["status"])
    items = get_json(kube, "nastrials", "-n", namespace, "-l", f"kubenas.dev/experiment={name}")["items"]
    trials = {t["metadata"]["name"]: t for t in items}
    assert sorted(trials) == sorted(f"{name}-{i}" for i in range(count)), sorted(trials)
    assert done["status"]["trials"]["created"] == count
    for trial_name, trial in trials.items():
        status = trial["status"]
        assert status["phase"] in ("Succeeded", "Stopped") and status["metrics"], (trial_name, status)
        assert int(trial_name.rsplit("-", 1)[1]) == trial["spec"]["index"]
    jobs = get_json(kube, "jobs", "-n", namespace, "-l", f"kubenas.dev/experiment={name}")["items"]
    reported: dict[str, dict[str, Any]] = {}
    for job in jobs:  # one pod per segment: nothing was trained twice
        job_name = job["metadata"]["name"]
        pods = get_json(kube, "pods", "-n", namespace, "-l", f"job-name={job_name}")["items"]
        assert len(pods) == 1, (job_name, [p["metadata"]["name"] for p in pods])
        terminated = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
        reported[job_name] = json.loads(terminated["message"])
    best = done["status"]["best"]
    succeeded = {
        n: t["status"]["objectiveValue"] for n, t in trials.items() if t["status"]["phase"] == "Succeeded"
    }
    winner = max(sorted(succeeded, key=lambda n: int(n.rsplit("-", 1)[1])), key=lambda n: succeeded[n])
    assert best["trial"] == winner and best["objectiveValue"] == succeeded[winner]
    segments = [j for j in reported if j == winner or j.startswith(f"{winner}-e")]
    last_segment = max(segments, key=lambda j: 0 if j == winner else int(j.rsplit("-e", 1)[1]))
    assert reported[last_segment]["metrics"]["accuracy"] == best["objectiveValue"]  # its own report
    if volume is not None:  # every epoch of every trial trained once
        for trial_name, trial in trials.items():
            rows = (volume / namespace / name / trial_name / "metrics.jsonl").read_text().splitlines()
            assert [json.loads(r)["epoch"] for r in rows] == list(range(1, trial["status"]["epochs"] + 1))


def test_twenty_operator_kills_lose_nothing(kube: Cluster, namespace: str, tmp_path: Path) -> None:
    print(f"chaos seed {SEED}, {KILLS} kills (KUBENAS_CHAOS_SEED / KUBENAS_CHAOS_KILLS reproduce it)")
    rng = random.Random(SEED)
    volume = tmp_path / "checkpoints"
    operator = OperatorProcess(kube.kubeconfig, namespace, tmp_path / "operator.log")
    operator.start()
    try:
        for doc, _ in CHAOS.values():
            apply(kube, namespace, with_volume(doc, volume))
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.5, 4.0))
            operator.kill()
            operator.start()
        wait_for(
            lambda: all(finished(kube, namespace, name) for name in CHAOS),
            900,
            "every experiment to finish",
            lambda: diagnostics(kube, namespace, operator),
        )
    finally:
        operator.stop()
    for name, (_, count) in CHAOS.items():
        check_nothing_lost(kube, namespace, name, count, volume)
    paused = get_json(kube, "events", "-n", namespace, "--field-selector", "reason=TrialPaused")["items"]
    assert sum(e.get("count", 1) for e in paused) <= 2 * 4 + 2 * 2 + 5  # one per pause at most


@pytest.mark.skipif(
    "os.environ.get('KUBENAS_TEST_KUBECONFIG')", reason="restarts the test's own control plane"
)
def test_an_apiserver_and_an_etcd_restart_mid_experiment_lose_nothing(
    kube: Cluster, namespace: str, tmp_path: Path
) -> None:
    assert kube.control_plane is not None
    doc = experiment("restarts", max_trials=4, parallel=2, epochs=12)
    doc["spec"]["searchSpace"]["hyperparameters"]["batchSize"] = {"values": [8]}  # a few seconds a trial
    # A leader that cannot renew its Lease within the renew deadline exits (as client-go's do), and an
    # API server restart on a loaded machine can outlast the default 10 s: give this one replica room.
    patient = ("--leader-election-renew-deadline", "40", "--leader-election-lease-duration", "60")
    with OperatorProcess(kube.kubeconfig, namespace, tmp_path / "operator.log", args=patient) as operator:
        apply(kube, namespace, doc)

        def running() -> bool:
            items = get_json(kube, "nastrials", "-n", namespace)["items"]
            return any(t.get("status", {}).get("phase") == "Running" for t in items)

        wait_for(running, 120, "a running trial", lambda: diagnostics(kube, namespace, operator))
        kube.control_plane.restart("kube-apiserver", down_seconds=3)
        wait_for(running, 120, "a running trial", lambda: diagnostics(kube, namespace, operator))
        kube.control_plane.restart("etcd", down_seconds=3)
        wait_for(
            lambda: finished(kube, namespace, "restarts"),
            600,
            "the experiment to finish",
            lambda: diagnostics(kube, namespace, operator),
        )
        assert operator.process is not None and operator.process.poll() is None  # it never crashed
    check_nothing_lost(kube, namespace, "restarts", 4, None)
