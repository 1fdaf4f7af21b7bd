"""One executor: the same experiment carried out through the Kubernetes backend and the local backend
(each over a simulated trainer) yields the same trials, statuses and events."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from kubenas.api import NASExperimentSpec, NASExperimentStatus, NASTrialStatus, TrialPhase
from kubenas.engine.backend import Backend
from kubenas.engine.decide import decide
from kubenas.engine.events import Event
from kubenas.engine.execute import execute
from kubenas.engine.observe import observe
from kubenas.k8s.backend import KubernetesBackend
from kubenas.local.backend import LocalBackend
from kubenas.local.console import Console
from kubenas.local.store import RunStore

from .simulated_backends import SPLIT, FakeKubeApi, FakeLauncher, SimulatedTrainer

NOW = "2026-01-01T00:00:00Z"
# Outputs in object storage: both backends then name the same artifacts and checkpoints.
VOLUME = {"storage": {"bucket": "runs", "endpoint": "http://s3.test:9000"}}
EXPERIMENTS = {
    "asha": {
        "budget": {"maxTrials": 7, "parallelTrials": 2},
        "training": {"epochs": 9},
        "strategy": {"name": "random", "seed": 4},
        "earlyStopping": {"rule": "asha", "minEpochs": 1, "reductionFactor": 3},
    },
    "pbt": {
        "budget": {"maxTrials": 9, "parallelTrials": 3},
        "training": {"epochs": 6},
        "strategy": {"name": "pbt", "seed": 2, "settings": {"populationSize": 3, "interval": 2}},
    },
    "reuse": {
        "budget": {"maxTrials": 5, "parallelTrials": 2},
        "training": {"epochs": 2},
        "searchSpace": {
            "layers": {"count": {"values": [1]}, "units": {"values": [32]}, "activations": ["relu"]},
            "hyperparameters": {
                "learningRate": {"values": [0.01]},
                "optimizers": ["adam", "sgd"],
                "batchSize": {"values": [64]},
            },
        },
    },
}


class Recorded:
    """A backend whose events are also kept, in order."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.events: list[Event] = []
        send = backend.send

        def record(event: Event) -> None:
            self.events.append(event)
            send(event)

        backend.send = record  # type: ignore[method-assign]


def run(spec: NASExperimentSpec, backend: Backend, finish_all: Any) -> NASExperimentStatus:
    """Passes of observe -> decide -> execute until the experiment ends; between passes every started
    segment ends with its simulated result."""
    status = NASExperimentStatus()
    for _ in range(100):
        seen = observe(backend, spec, NOW)
        plan = decide("exp", spec, seen.records, status, 1, NOW)
        execute(plan, backend, spec, seen, NOW)
        status = plan.status
        if plan.finished:
            return status
        finish_all()
    raise AssertionError("the experiment never ended")


def statuses(backend: Backend) -> dict[str, dict[str, Any]]:
    timeless = {"start_time", "completion_time"}
    return {t.name: t.status.model_dump(exclude=timeless) for t in backend.observe()}


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_both_backends_carry_out_the_same_plan(name: str, tmp_path: Path) -> None:
    spec = NASExperimentSpec.model_validate({**EXPERIMENTS[name], **VOLUME})
    api = FakeKubeApi(SimulatedTrainer())
    body = {"metadata": {"namespace": "ns", "name": "exp", "uid": "uid-exp"}}
    kube = Recorded(KubernetesBackend(api, body, spec, lambda *event: None))  # type: ignore[arg-type]
    kube_status = run(spec, kube.backend, api.finish_all)

    launcher = FakeLauncher(SimulatedTrainer())
    console = Console("accuracy", spec.training.epochs, out=io.StringIO())
    local_backend = LocalBackend(RunStore(tmp_path / "exp"), launcher, console, spec, "exp", "ns")  # type: ignore[arg-type]
    local = Recorded(local_backend)
    local_status = run(spec, local.backend, launcher.finish_all)

    timeless = {"start_time", "completion_time", "conditions"}
    assert kube_status.model_dump(exclude=timeless) == local_status.model_dump(exclude=timeless)
    assert kube_status.phase == "Succeeded" and kube_status.best is not None
    assert statuses(kube.backend) == statuses(local.backend)
    assert [(e.reason, e.trial, e.message) for e in kube.events] == [
        (e.reason, e.trial, e.message) for e in local.events
    ]
    trials = statuses(kube.backend)
    assert all(t["split_fingerprint"] == SPLIT for t in trials.values() if t["phase"] != "Failed")
    assert len(trials) == spec.budget.max_trials


def test_asha_statuses_only_grow_and_each_pause_is_announced_once() -> None:
    """The regression of a paused trial observed through an older segment's Job: recorded epochs and
    objectives only grow, and a trial gets one TrialPaused event per pause."""
    spec = NASExperimentSpec.model_validate({**EXPERIMENTS["asha"], **VOLUME})
    api = FakeKubeApi(SimulatedTrainer())
    body = {"metadata": {"namespace": "ns", "name": "exp", "uid": "uid-exp"}}
    kube = Recorded(KubernetesBackend(api, body, spec, lambda *event: None))  # type: ignore[arg-type]
    history: dict[str, list[tuple[int, int]]] = {}
    status = NASExperimentStatus()
    for _ in range(100):
        seen = observe(kube.backend, spec, NOW)
        for record in seen.records:
            history.setdefault(record.name, []).append((record.epochs or 0, len(record.curve)))
        plan = decide("exp", spec, seen.records, status, 1, NOW)
        execute(plan, kube.backend, spec, seen, NOW)
        status = plan.status
        if plan.finished:
            break
        observe(kube.backend, spec, NOW)  # the new Jobs' start times are recorded
        for _ in range(3):  # passes that see nothing new write nothing and say nothing
            calls, events = len(api.calls), len(kube.events)
            observe(kube.backend, spec, NOW)
            assert [c for c in api.calls[calls:] if c.startswith("patch")] == [] and len(
                kube.events
            ) == events
        api.finish_all()
    for name, seq in history.items():
        assert seq == sorted(seq), f"{name} went back in time: {seq}"
    pauses = [e.trial for e in kube.events if e.reason == "TrialPaused"]
    promotions = [e.trial for e in kube.events if e.reason == "TrialPromoted"]
    for trial in set(pauses):
        assert pauses.count(trial) == promotions.count(trial) + (
            1 if statuses(kube.backend)[trial]["phase"] == TrialPhase.STOPPED else 0
        )
    assert max(pauses.count(t) for t in set(pauses)) == 2  # paused at rungs 1 and 3 (epochs 9, eta 3)


def test_a_stopped_trial_keeps_its_last_live_epoch(tmp_path: Path) -> None:
    """The median rule stops a running trial: its status keeps the newest epoch it reached."""
    from kubenas.engine.execute import stopped_status
    from kubenas.engine.records import TrialRecord
    from kubenas.strategies import make_strategy

    spec = NASExperimentSpec.model_validate({})
    candidate = make_strategy(spec).ask([], 1)[0]
    live = ({"epoch": 1, "accuracy": 0.5, "loss": 1.0}, {"epoch": 2, "accuracy": 0.6, "loss": 0.9})
    running = TrialRecord("exp-0", 0, 1, candidate, TrialPhase.RUNNING, epoch_metrics=live, start_time="t0")
    stopped = stopped_status(running, "early stopping: x", spec.objective, NOW)
    assert (stopped.phase, stopped.epochs, stopped.objective_value) == (TrialPhase.STOPPED, 2, 0.6)
    assert stopped.metrics == {"accuracy": 0.6, "loss": 0.9} and stopped.curve == [0.5, 0.6]
    assert (stopped.start_time, stopped.completion_time, stopped.message) == ("t0", NOW, "early stopping: x")
    paused = TrialRecord(
        "exp-1",
        1,
        2,
        candidate,
        TrialPhase.PAUSED,
        metrics={"accuracy": 0.7},
        epochs=3,
        curve=(0.5, 0.6, 0.7),
    )
    kept = stopped_status(paused, "experiment ended", spec.objective, NOW)
    assert (kept.epochs, kept.curve, kept.metrics) == (3, [0.5, 0.6, 0.7], {"accuracy": 0.7})
    assert isinstance(kept, NASTrialStatus)
