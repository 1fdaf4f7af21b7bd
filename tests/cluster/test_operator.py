"""The operator end to end against a real kube-apiserver, Job controller, garbage collector and scheduler."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubenas.api import NASExperiment, NASTrialSpec, NASTrialStatus
from kubenas.engine.records import record
from kubenas.engine.reuse import warm_start
from kubenas.strategies import make_strategy

from .conftest import ROOT, get_json, wait_for
from .fixtures import Cluster
from .operator_process import OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
EXAMPLE = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())


def experiment(name: str, max_trials: int, parallel: int, epochs: int, **spec: Any) -> dict[str, Any]:
    doc = copy.deepcopy(EXAMPLE)
    doc["metadata"] = {"name": name}
    doc["spec"]["objective"].pop("target")
    doc["spec"]["budget"] = {"maxTrials": max_trials, "parallelTrials": parallel, "maxFailedTrials": 0}
    doc["spec"]["training"]["epochs"] = epochs
    # Two trials share the test machine's cores: one thread each, as a user would on a small node.
    threads = [{"name": "KUBENAS_NUM_THREADS", "value": "1"}, {"name": "OMP_NUM_THREADS", "value": "1"}]
    doc["spec"]["trialTemplate"]["env"] = threads
    doc["spec"].update(spec)
    return doc


def apply(kube: Cluster, namespace: str, doc: dict[str, Any], check: bool = True) -> Any:
    return kube.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc), check=check)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), None)


def finished(kube: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    obj = get_json(kube, "nasexperiment", name, "-n", namespace)
    done = condition(obj, "Succeeded") or condition(obj, "Failed")
    return obj if done and done["status"] == "True" else None


def diagnostics(kube: Cluster, namespace: str, operator: OperatorProcess) -> str:
    got = kube.kubectl("get", "nasx,nast,jobs,pods", "-n", namespace, "-o", "wide", check=False).stdout
    return f"{got}\n--- operator log ---\n{operator.tail()}"


def test_experiment_runs_trials_as_jobs_and_reports_the_best(
    kube: Cluster, namespace: str, tmp_path: Path
) -> None:
    with OperatorProcess(kube.kubeconfig, namespace, tmp_path / "operator.log") as operator:
        apply(kube, namespace, experiment("digits", max_trials=3, parallel=2, epochs=3))
        done = wait_for(
            lambda: finished(kube, namespace, "digits"),
            300,
            "the experiment to finish",
            lambda: diagnostics(kube, namespace, operator),
        )

    status = done["status"]
    assert condition(done, "Succeeded")["reason"] == "MaxTrialsReached"  # type: ignore[index]
    assert status["phase"] == "Succeeded" and status["progress"] == "3/3"
    assert status["observedGeneration"] == done["metadata"]["generation"]
    trials = {t["metadata"]["name"]: t for t in get_json(kube, "nastrials", "-n", namespace)["items"]}
    jobs = {j["metadata"]["name"]: j for j in get_json(kube, "jobs", "-n", namespace)["items"]}
    assert sorted(trials) == sorted(jobs) == ["digits-0", "digits-1", "digits-2"]
    for name, trial in trials.items():
        assert trial["metadata"]["ownerReferences"][0]["uid"] == done["metadata"]["uid"]
        assert jobs[name]["metadata"]["ownerReferences"][0]["uid"] == trial["metadata"]["uid"]
        limits = jobs[name]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == "1"
        assert trial["status"]["phase"] == "Succeeded"

    # The best is the trial with the highest accuracy, as its own pod reported it.
    pods = get_json(kube, "pods", "-n", namespace)["items"]
    reported = {
        p["metadata"]["labels"]["kubenas.dev/trial"]: json.loads(
            p["status"]["containerStatuses"][0]["state"]["terminated"]["message"]
        )
        for p in pods
    }
    best = max(sorted(reported), key=lambda n: reported[n]["metrics"]["accuracy"])
    assert status["best"]["trial"] == best
    assert status["best"]["objectiveValue"] == reported[best]["metrics"]["accuracy"]
    assert status["best"]["metrics"] == reported[best]["metrics"]
    assert status["best"]["candidate"] == trials[best]["spec"]["candidate"]


def test_operator_killed_mid_experiment_finishes_without_duplicates(
    kube: Cluster, namespace: str, tmp_path: Path
) -> None:
    doc = experiment("restart", max_trials=4, parallel=2, epochs=30)
    operator = OperatorProcess(kube.kubeconfig, namespace, tmp_path / "operator.log")
    operator.start()
    try:
        apply(kube, namespace, doc)
        wait_for(
            lambda: any(
                t.get("status", {}).get("phase") == "Running"
                for t in get_json(kube, "nastrials", "-n", namespace)["items"]
            ),
            120,
            "a running trial",
            lambda: diagnostics(kube, namespace, operator),
        )
        operator.kill()
        operator.start()
        done = wait_for(
            lambda: finished(kube, namespace, "restart"),
            300,
            "the experiment to finish",
            lambda: diagnostics(kube, namespace, operator),
        )
    finally:
        operator.stop()

    assert done["status"]["phase"] == "Succeeded", done["status"]
    trials = get_json(kube, "nastrials", "-n", namespace)["items"]
    jobs = get_json(kube, "jobs", "-n", namespace)["items"]
    assert sorted(t["metadata"]["name"] for t in trials) == [f"restart-{i}" for i in range(4)]
    assert len(jobs) == 4
    # Each index got the candidate the seeded strategy proposes for it: nothing re-drawn or skipped.
    spec = NASExperiment.model_validate({**doc, "metadata": {"name": "restart"}}).spec
    expected = [c.key() for c in make_strategy(spec).ask([], 4)]
    by_index = sorted(trials, key=lambda t: t["spec"]["index"])
    assert [t["spec"]["candidateKey"] for t in by_index] == expected
    assert all(t["status"]["phase"] == "Succeeded" for t in trials)


def test_schema_rejects_what_it_can_express(kube: Cluster, namespace: str) -> None:
    bad = experiment("bad", max_trials=0, parallel=1, epochs=1)
    out = apply(kube, namespace, bad, check=False)
    assert out.returncode != 0 and "spec.budget.maxTrials" in out.stderr
    inverted = experiment("bad", max_trials=2, parallel=3, epochs=1)
    out = apply(kube, namespace, inverted, check=False)
    assert out.returncode != 0 and "parallelTrials must be <= maxTrials" in out.stderr
    domain = experiment("bad", max_trials=2, parallel=1, epochs=1)
    domain["spec"]["searchSpace"]["layers"]["units"] = {"values": [8], "min": 1, "max": 4}
    out = apply(kube, namespace, domain, check=False)
    assert out.returncode != 0 and "set either values, or both min and max" in out.stderr
    typo = experiment("bad", max_trials=2, parallel=1, epochs=1)
    typo["spec"]["objective"]["metric"] = "bleu"
    out = apply(kube, namespace, typo, check=False)
    assert out.returncode != 0 and "spec.objective.metric" in out.stderr


def test_invalid_spec_is_reported_and_the_operator_keeps_serving(
    kube: Cluster, namespace: str, tmp_path: Path
) -> None:
    with OperatorProcess(kube.kubeconfig, namespace, tmp_path / "operator.log") as operator:
        apply(kube, namespace, experiment("broken", 2, 1, 1, strategy={"name": "annealing"}))
        apply(kube, namespace, experiment("fine", 1, 1, 2))
        broken = wait_for(
            lambda: condition(get_json(kube, "nasx", "broken", "-n", namespace), "Failed"),
            60,
            "InvalidSpec",
            lambda: diagnostics(kube, namespace, operator),
        )
        assert broken["reason"] == "InvalidSpec"
        assert broken["message"].startswith("spec.strategy.name: unknown strategy 'annealing'")
        wait_for(
            lambda: finished(kube, namespace, "fine"),
            240,
            "the valid experiment",
            lambda: diagnostics(kube, namespace, operator),
        )
        ghost = experiment("ghost", 1, 1, 1, strategy={"name": "random", "warmStartFrom": "nowhere"})
        apply(kube, namespace, ghost)
        warm = experiment("warm", 1, 1, 1, strategy={"name": "evolution", "warmStartFrom": "fine"})
        apply(kube, namespace, warm)
        missing = wait_for(
            lambda: condition(get_json(kube, "nasx", "ghost", "-n", namespace), "Failed"),
            60,
            "InvalidSpec",
            lambda: diagnostics(kube, namespace, operator),
        )
        assert (
            missing["message"]
            == "spec.strategy.warmStartFrom: no NASExperiment 'nowhere' in namespace " + namespace
        )
        wait_for(
            lambda: finished(kube, namespace, "warm"),
            240,
            "the warm-started experiment",
            lambda: diagnostics(kube, namespace, operator),
        )
        all_trials = get_json(kube, "nastrials", "-n", namespace)["items"]
        source = [
            record(
                NASTrialSpec.model_validate(t["spec"]),
                NASTrialStatus.model_validate(t["status"]),
                t["metadata"]["name"],
                launched=True,
            )
            for t in all_trials
            if t["spec"]["experiment"] == "fine"
        ]
        expected = make_strategy(NASExperiment.model_validate(warm).spec).ask(warm_start("fine", source), 1)[
            0
        ]
        [warm_trial] = [t for t in all_trials if t["spec"]["experiment"] == "warm"]
        assert warm_trial["spec"]["candidate"] == expected.to_dict()
        events = get_json(kube, "events", "-n", namespace, "--field-selector", "involvedObject.name=broken")
        assert any(e["reason"] == "InvalidSpec" and e["type"] == "Warning" for e in events["items"])
        assert not [
            t
            for t in get_json(kube, "nastrials", "-n", namespace)["items"]
            if t["spec"]["experiment"] == "broken"
        ]
        assert operator.process is not None and operator.process.poll() is None


def test_identical_candidate_reuses_the_result_without_a_job(
    kube: Cluster, namespace: str, tmp_path: Path
) -> None:
    one_point = {
        "layers": {"count": {"values": [1]}, "units": {"values": [16]}, "activations": ["relu"]},
        "hyperparameters": {
            "learningRate": {"values": [0.01]},
            "optimizers": ["adam"],
            "batchSize": {"values": [64]},
        },
    }
    with OperatorProcess(kube.kubeconfig, namespace, tmp_path / "operator.log") as operator:
        # Three slots: the twins proposed while same-0 trains wait for its result (no Job of their own).
        apply(kube, namespace, experiment("same", 3, 3, 2, searchSpace=one_point))
        done = wait_for(
            lambda: finished(kube, namespace, "same"),
            240,
            "the experiment to finish",
            lambda: diagnostics(kube, namespace, operator),
        )
    assert done["status"]["phase"] == "Succeeded" and done["status"]["progress"] == "3/3"
    trials = {t["metadata"]["name"]: t for t in get_json(kube, "nastrials", "-n", namespace)["items"]}
    jobs = [j["metadata"]["name"] for j in get_json(kube, "jobs", "-n", namespace)["items"]]
    assert sorted(trials) == ["same-0", "same-1", "same-2"] and jobs == ["same-0"]
    for name in ("same-1", "same-2"):
        assert trials[name]["status"]["message"] == "reused the result of same-0 (same candidate)"
        assert trials[name]["status"]["metrics"] == trials["same-0"]["status"]["metrics"]
    events = get_json(kube, "events", "-n", namespace, "--field-selector", "reason=TrialWaiting")["items"]
    assert {e["message"].split(":")[0] for e in events} == {"same-1", "same-2"}


def test_asha_promotes_paused_trials_in_new_jobs_and_their_records_never_go_back(
    kube: Cluster, namespace: str, tmp_path: Path
) -> None:
    """Three rungs (1, 3, then 9 epochs): while it runs, every NASTrial's recorded epochs and curve only
    grow, and each pause is announced by exactly one TrialPaused event."""
    asha = {"rule": "asha", "minEpochs": 1, "reductionFactor": 3}
    doc = experiment("asha", max_trials=4, parallel=2, epochs=9, earlyStopping=asha)
    unusable = copy.deepcopy(doc)
    unusable["metadata"]["name"] = "asha-no-volume"
    volume = tmp_path / "checkpoints"
    doc["spec"]["trialTemplate"]["checkpointVolume"] = {"hostPath": {"path": str(volume)}}
    seen: dict[str, list[tuple[int, int, float | None]]] = {}

    def watch() -> dict[str, Any] | None:
        items = get_json(kube, "nastrials", "-n", namespace, "-l", "kubenas.dev/experiment=asha")["items"]
        for t in items:
            status = t.get("status", {})
            record = (status.get("epochs") or 0, len(status.get("curve", [])), status.get("objectiveValue"))
            history = seen.setdefault(t["metadata"]["name"], [])
            if not history or history[-1] != record:
                history.append(record)
        return finished(kube, namespace, "asha")

    with OperatorProcess(kube.kubeconfig, namespace, tmp_path / "operator.log") as operator:
        apply(kube, namespace, unusable)
        apply(kube, namespace, doc)
        done = wait_for(
            watch, 400, "the experiment to finish", lambda: diagnostics(kube, namespace, operator)
        )
        rejected = wait_for(lambda: finished(kube, namespace, "asha-no-volume"), 30, "the rejection")

    failed = condition(rejected, "Failed")
    assert failed is not None and failed["reason"] == "InvalidSpec"
    assert "spec.storage: required on a cluster with earlyStopping.rule asha" in (failed["message"])
    assert done["status"]["phase"] == "Succeeded"
    items = get_json(kube, "nastrials", "-n", namespace, "-l", "kubenas.dev/experiment=asha")["items"]
    trials = {t["metadata"]["name"]: t["status"] for t in items}
    jobs = {j["metadata"]["name"] for j in get_json(kube, "jobs", "-n", namespace)["items"]}
    full = sorted(name for name, s in trials.items() if s["phase"] == "Succeeded")
    assert len(trials) == 4 and full, trials
    assert done["status"]["best"]["trial"] in full
    assert len({s["splitFingerprint"] for s in trials.values()}) == 1  # one split for every trial
    events = get_json(kube, "events", "-n", namespace, "--field-selector", "reason=TrialPaused")["items"]
    for name, status in trials.items():
        epochs = [e for e, _, _ in seen[name]]
        assert epochs == sorted(epochs), f"{name}'s recorded epochs went back: {seen[name]}"
        assert [c for _, c, _ in seen[name]] == sorted(c for _, c, _ in seen[name]), seen[name]
        segments = sorted(j for j in jobs if j == name or j.startswith(f"{name}-e"))
        pauses = len(segments) - (status["phase"] == "Succeeded")  # every segment paused but a last one
        announced = sum(e.get("count", 1) for e in events if e["message"].startswith(f"{name}: "))
        assert announced == pauses, (name, segments, [e["message"] for e in events])
        if name in full:  # promoted at rungs 1 and 3: two more Jobs continued it to the last epoch
            assert status["epochs"] == 9 and len(status["curve"]) == 9
            assert segments == [name, f"{name}-e1", f"{name}-e3"]
        else:  # paused at a rung, never promoted beyond it
            assert status["phase"] == "Stopped" and status["epochs"] in (1, 3), status
            assert f"paused after epoch {status['epochs']}" in status["message"]
    if kube.agent is not None:  # the local node: its hostPath volume is this test's directory
        name = full[0]
        checkpoint = volume / namespace / "asha" / name / "checkpoint.pt"
        assert checkpoint.is_file()
        for after in (1, 3):
            pod = get_json(kube, "pods", "-n", namespace, "-l", f"job-name={name}-e{after}")["items"][0]
            log = kube.agent.logs(namespace, pod["metadata"]["name"])["trainer"]
            assert f"resumed from {checkpoint} after epoch {after}" in log


def test_pbt_children_start_from_their_parents_checkpoints_on_the_volume(
    kube: Cluster, namespace: str, tmp_path: Path
) -> None:
    strategy = {"name": "pbt", "seed": 1, "settings": {"populationSize": 2, "interval": 1}}
    doc = experiment("pbt", max_trials=4, parallel=2, epochs=2, strategy=strategy)
    volume = tmp_path / "checkpoints"
    doc["spec"]["trialTemplate"]["checkpointVolume"] = {"hostPath": {"path": str(volume)}}
    with OperatorProcess(kube.kubeconfig, namespace, tmp_path / "operator.log") as operator:
        apply(kube, namespace, doc)
        done = wait_for(
            lambda: finished(kube, namespace, "pbt"),
            300,
            "the experiment to finish",
            lambda: diagnostics(kube, namespace, operator),
        )

    assert done["status"]["phase"] == "Succeeded", done["status"]
    items = get_json(kube, "nastrials", "-n", namespace)["items"]
    trials = {t["metadata"]["name"]: t for t in items}
    assert sorted(trials) == ["pbt-0", "pbt-1", "pbt-2", "pbt-3"]
    for name in ("pbt-0", "pbt-1"):  # generation 0: paused after epoch 1, stopped at the end
        assert trials[name]["status"]["phase"] == "Stopped" and trials[name]["status"]["epochs"] == 1
    for name in ("pbt-2", "pbt-3"):  # generation 1: continues a generation-0 checkpoint to the end
        spec, status = trials[name]["spec"], trials[name]["status"]
        assert spec["startFrom"] in ("pbt-0", "pbt-1") and spec["note"].startswith("PBT generation 1")
        assert status["phase"] == "Succeeded" and status["epochs"] == 2 and len(status["curve"]) == 2
        if kube.agent is not None:
            pod = get_json(kube, "pods", "-n", namespace, "-l", f"job-name={name}")["items"][0]
            log = kube.agent.logs(namespace, pod["metadata"]["name"])["trainer"]
            parent = volume / namespace / "pbt" / spec["startFrom"] / "checkpoint.pt"
            assert f"started from {parent} after epoch 1" in log
    events = get_json(kube, "events", "-n", namespace, "--field-selector", "reason=TrialCreated")["items"]
    assert any("PBT generation 1" in e["message"] for e in events)
    fingerprints = {t["status"]["splitFingerprint"] for t in trials.values()}
    assert len(fingerprints) == 1 and None not in fingerprints  # every member on the same split
