"""Experiment-level budgets in wall-clock time and GPU-hours, decided by the pure engine on a fake clock,
and carried out the same through the Kubernetes and the local backend."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kubenas.api import ExperimentPhase, NASExperimentSpec, NASExperimentStatus, TrialPhase
from kubenas.engine.backend import Backend
from kubenas.engine.cycle import run_pass
from kubenas.engine.decide import decide
from kubenas.engine.observe import QUEUED
from kubenas.engine.records import TrialRecord, trial_name
from kubenas.k8s.backend import KubernetesBackend
from kubenas.local.backend import LocalBackend
from kubenas.local.console import Console
from kubenas.local.store import RunStore
from kubenas.strategies import make_strategy

from .simulated_backends import FakeKubeApi, FakeLauncher, SimulatedTrainer

T0 = "2026-01-01T00:00:00Z"


def at(seconds: int) -> str:
    return f"2026-01-01T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}Z"


def make_spec(budget: dict[str, Any], limits: dict[str, Any] | None = None) -> NASExperimentSpec:
    template = {"resources": {"limits": limits}} if limits is not None else {}
    return NASExperimentSpec.model_validate(
        {"budget": {"maxTrials": 6, "parallelTrials": 2, **budget}, "trialTemplate": template}
    )


def records(spec: NASExperimentSpec, *trials: dict[str, Any]) -> list[TrialRecord]:
    candidates = make_strategy(spec).ask([], len(trials))
    return [
        TrialRecord(trial_name("exp", i), i, i, c, **fields)
        for i, (c, fields) in enumerate(zip(candidates, trials, strict=True))
    ]


def started(at_: str = T0) -> NASExperimentStatus:
    return NASExperimentStatus(phase=ExperimentPhase.RUNNING, start_time=at_)


def test_the_wall_clock_budget_ends_the_experiment_and_stops_its_running_trials() -> None:
    spec = make_spec({"maxDurationSeconds": 600})
    trials = records(
        spec,
        {"phase": TrialPhase.SUCCEEDED, "metrics": {"accuracy": 0.8}},
        {"phase": TrialPhase.RUNNING, "running_since": at(300)},
        {"phase": TrialPhase.PAUSED, "metrics": {"accuracy": 0.7}, "epochs": 1},
    )
    before = decide("exp", spec, trials, started(), 1, at(599))
    assert before.status.phase is ExperimentPhase.RUNNING and [t.name for t in before.launch] == ["exp-3"]
    over = decide("exp", spec, trials, started(), 1, at(600))
    assert over.finished and over.launch == [] and over.status.phase is ExperimentPhase.SUCCEEDED
    assert {s.name: s.reason for s in over.stop} == {
        "exp-1": "experiment ended: WallClockBudgetExhausted",
        "exp-2": "experiment ended (WallClockBudgetExhausted) with the trial paused after epoch 1",
    }
    condition = over.status.conditions[-1]
    assert (condition.type, condition.reason) == ("Succeeded", "WallClockBudgetExhausted")
    assert condition.message.startswith("600 s since the start; budget.maxDurationSeconds is 600; best exp-0")
    assert over.status.completion_time == at(600)


def test_no_succeeded_trial_when_a_budget_runs_out_is_a_failure_with_the_budgets_reason() -> None:
    spec = make_spec({"maxDurationSeconds": 60})
    trials = records(spec, {"phase": TrialPhase.RUNNING, "running_since": T0})
    over = decide("exp", spec, trials, started(), 1, at(61))
    assert over.status.phase is ExperimentPhase.FAILED
    assert over.status.conditions[-1].reason == "WallClockBudgetExhausted"
    assert over.status.conditions[-1].message.endswith("no trial succeeded")


def test_gpu_hours_count_gpus_held_times_time_run_never_queued_time() -> None:
    spec = make_spec({"maxGpuHours": 1}, limits={"nvidia.com/gpu": 2})
    trials = records(
        spec,
        {"phase": TrialPhase.SUCCEEDED, "metrics": {"accuracy": 0.8}, "run_seconds": 1200.0},  # 2/3 GPU-h
        {"phase": TrialPhase.RUNNING, "running_since": T0, "run_seconds": 0.0},
        {"phase": TrialPhase.PENDING, "reason": QUEUED},  # queued since the start: no GPU held
    )
    under = decide("exp", spec, trials, started(), 1, at(599))
    assert under.status.phase is ExperimentPhase.RUNNING
    assert under.status.gpu_hours == pytest.approx(0.999, abs=0.005)
    assert under.status.trials.queued == 1 and under.status.trials.pending == 1
    over = decide("exp", spec, trials, started(), 1, at(600))
    assert over.finished and over.launch == []
    assert [s.name for s in over.stop] == ["exp-1", "exp-2"]  # the queued one's Job goes too
    assert over.status.conditions[-1].reason == "GPUHoursBudgetExhausted"
    assert over.status.gpu_hours == 1.0 and over.status.trials.queued == 0


def test_a_mig_slice_counts_as_one_gpu_and_cpu_trials_count_none() -> None:
    mig = make_spec({"maxGpuHours": 0.5}, limits={"nvidia.com/mig-1g.10gb": 1})
    trials = records(mig, {"phase": TrialPhase.RUNNING, "running_since": T0})
    assert decide("exp", mig, trials, started(), 1, at(1800)).status.conditions[-1].reason == (
        "GPUHoursBudgetExhausted"
    )
    cpu = make_spec({}, limits={"cpu": "2"})
    status = decide("exp", cpu, records(cpu, {"phase": TrialPhase.RUNNING}), started(), 1, at(9)).status
    assert status.gpu_hours is None  # nothing to count, nothing shown


def test_an_experiment_that_ended_otherwise_keeps_its_reason_as_time_goes_on() -> None:
    spec = make_spec({"maxTrials": 2, "parallelTrials": 1, "maxDurationSeconds": 60})
    trials = records(
        spec,
        {"phase": TrialPhase.SUCCEEDED, "metrics": {"accuracy": 0.8}},
        {"phase": TrialPhase.SUCCEEDED, "metrics": {"accuracy": 0.9}},
    )
    later = decide("exp", spec, trials, started(), 1, at(3600))
    assert later.status.conditions[-1].reason == "MaxTrialsReached"


def test_a_used_up_budget_stays_used_up_once_its_trials_are_stopped() -> None:
    spec = make_spec({"maxGpuHours": 0.25}, limits={"nvidia.com/gpu": 1})
    trials = records(spec, {"phase": TrialPhase.RUNNING, "running_since": T0})
    first = decide("exp", spec, trials, started(), 1, at(900))
    stopped = [replace(trials[0], phase=TrialPhase.STOPPED, running_since=None, run_seconds=900.0)]
    again = decide("exp", spec, stopped, first.status, 1, at(5000))
    assert again.status.conditions[-1].reason == "GPUHoursBudgetExhausted" and again.launch == []
    assert (again.status.phase, again.status.gpu_hours) == (first.status.phase, first.status.gpu_hours)
    assert again.status.conditions == first.status.conditions  # no new transition, nothing rewritten


def kube_backend(spec: NASExperimentSpec, _: Path) -> tuple[Backend, Any]:
    api = FakeKubeApi(SimulatedTrainer())
    body = {"metadata": {"namespace": "ns", "name": "exp", "uid": "uid-exp"}}
    return KubernetesBackend(api, body, spec, lambda *event: None), api  # type: ignore[arg-type]


def local_backend(spec: NASExperimentSpec, tmp_path: Path) -> tuple[Backend, Any]:
    launcher = FakeLauncher(SimulatedTrainer())
    console = Console("accuracy", spec.training.epochs, out=io.StringIO())
    store = RunStore(tmp_path / "exp")
    return LocalBackend(store, launcher, console, spec, "exp", "ns"), launcher  # type: ignore[arg-type]


@pytest.mark.parametrize("make", [kube_backend, local_backend], ids=["kubernetes", "local"])
def test_both_backends_end_at_the_wall_clock_budget(make: Any, tmp_path: Path) -> None:
    """The local runner and the operator run the same passes: the budget ends both alike."""
    spec = make_spec({"maxDurationSeconds": 120})
    backend, fake = make(spec, tmp_path)
    status = NASExperimentStatus()
    first = run_pass("exp", backend, spec, status, 1, T0)
    assert not first.finished and first.status.trials.created == 2
    done = run_pass("exp", backend, spec, first.status, 1, at(120))
    assert done.finished and done.status.conditions[-1].reason == "WallClockBudgetExhausted"
    trials = {t.name: t.status for t in backend.observe()}
    assert {n: s.phase for n, s in trials.items()} == {
        "exp-0": TrialPhase.STOPPED,
        "exp-1": TrialPhase.STOPPED,
    }
    assert all(s.message == "experiment ended: WallClockBudgetExhausted" for s in trials.values())
    running = fake.running if isinstance(fake, FakeLauncher) else set(fake.jobs)
    assert running == set()  # their processes / Jobs are gone
