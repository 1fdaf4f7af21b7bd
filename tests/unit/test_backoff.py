"""A refused child or a failing strategy: a condition and one Warning event naming the cause, nothing
created again until the backoff expires (doubling per attempt), and recovery once the cause is gone."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubenas.api import ExperimentPhase, NASExperimentSpec, NASExperimentStatus
from kubenas.engine import backoff
from kubenas.engine.cycle import run_pass
from kubenas.k8s.backend import KubernetesBackend
from kubenas.strategies import make_strategy
from kubernetes.client.exceptions import ApiException

from .simulated_backends import FakeKubeApi, SimulatedTrainer

BODY = {"metadata": {"namespace": "ns", "name": "exp", "uid": "uid-exp"}}
REFUSAL = (
    'Job.batch "exp-0" is invalid: spec.template.spec.containers[0].resources.limits[nvidia.com/gpu]: '
    'Invalid value: "1500m": must be an integer'
)


class RefusingApi(FakeKubeApi):
    """The API server stand-in, refusing every Job with 422 while `refuse` is set."""

    def __init__(self) -> None:
        super().__init__(SimulatedTrainer())
        self.refuse = True
        self.job_attempts = 0

    def create_job(self, namespace: str, body: dict[str, Any]) -> bool:
        self.job_attempts += 1
        if self.refuse:
            error = ApiException(status=422, reason="Unprocessable Entity")
            error.body = json.dumps({"kind": "Status", "message": REFUSAL})
            raise error
        return super().create_job(namespace, body)


def at(seconds: int) -> str:
    return f"2026-01-01T00:{seconds // 60:02d}:{seconds % 60:02d}Z"


def test_a_refused_job_holds_off_with_a_condition_and_one_event_then_recovers() -> None:
    spec = NASExperimentSpec.model_validate({"budget": {"maxTrials": 2, "parallelTrials": 1}})
    api = RefusingApi()
    backend = KubernetesBackend(api, BODY, spec, lambda *event: None)  # type: ignore[arg-type]
    status, warnings = NASExperimentStatus(), []

    def tick(seconds: int) -> NASExperimentStatus:
        nonlocal status
        done = run_pass("exp", backend, spec, status, 1, at(seconds))
        status = done.status
        if done.warning is not None:
            warnings.append(done.warning)
        return status

    first = tick(0)
    assert first.backoff is not None and (first.backoff.attempts, first.backoff.next_attempt) == (1, at(5))
    failure = next(c for c in first.conditions if c.type == "CreateFailure")
    assert (failure.status, failure.reason) == ("True", "Invalid") and REFUSAL in failure.message
    assert failure.message.startswith("Job exp-0: ")  # the object, then the API server's own words
    assert first.phase is ExperimentPhase.PENDING  # nothing runs: it does not read Running
    running = next(c for c in first.conditions if c.type == "Running")
    assert (running.status, running.reason) == ("False", "CreateFailure")
    assert api.job_attempts == 1 and list(api.trials) == ["exp-0"]  # the trial is recorded, its Job is not

    for seconds in (1, 2, 4):  # within the backoff: passes create nothing and say nothing
        assert tick(seconds).backoff == first.backoff
    assert api.job_attempts == 1 and len(warnings) == 1

    second = tick(5)  # the next attempt fails the same way: the delay doubles, no new event
    assert second.backoff is not None and (second.backoff.attempts, second.backoff.next_attempt) == (
        2,
        at(15),
    )
    assert api.job_attempts == 2 and len(warnings) == 1
    assert next(c for c in second.conditions if c.type == "CreateFailure").last_transition_time == at(0)

    api.refuse = False  # the cause is fixed (e.g. the template corrected)
    recovered = tick(15)
    assert recovered.backoff is None and all(c.type != "CreateFailure" for c in recovered.conditions)
    assert recovered.phase is ExperimentPhase.RUNNING and api.job_attempts == 3 and "exp-0" in api.jobs


def test_a_failing_strategy_holds_off_and_the_experiment_goes_on_when_it_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = NASExperimentSpec.model_validate({"budget": {"maxTrials": 2, "parallelTrials": 1}})
    strategy = make_strategy(spec)
    healthy = strategy.propose

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the model server is down")

    monkeypatch.setattr(strategy, "propose", broken)
    api = FakeKubeApi(SimulatedTrainer())
    backend = KubernetesBackend(api, BODY, spec, lambda *event: None)  # type: ignore[arg-type]
    done = run_pass("exp", backend, spec, NASExperimentStatus(), 1, at(0), strategy=strategy)
    failure = next(c for c in done.status.conditions if c.type == "StrategyFailure")
    assert failure.reason == "StrategyRaised" and "RuntimeError: the model server is down" in failure.message
    assert done.warning == ("StrategyRaised", failure.message) and api.trials == {}
    assert done.status.backoff is not None and done.status.backoff.reason == "StrategyFailure"
    held = run_pass("exp", backend, spec, done.status, 1, at(3), strategy=strategy)
    assert held.warning is None and held.status.backoff == done.status.backoff  # not asked again yet
    monkeypatch.setattr(strategy, "propose", healthy)
    later = run_pass("exp", backend, spec, held.status, 1, at(5), strategy=strategy)
    assert later.status.backoff is None and list(api.trials) == ["exp-0"]
    assert all(c.type != "StrategyFailure" for c in later.status.conditions)


def test_the_delay_doubles_up_to_five_minutes() -> None:
    assert [backoff.delay_seconds(n) for n in (1, 2, 3, 4, 5, 6, 7, 50)] == [5, 10, 20, 40, 80, 160, 300, 300]


class DeletingApi(FakeKubeApi):
    """The API server stand-in, where every trial is deleted (404) right after a pass lists it, as
    when its experiment is being deleted."""

    def __init__(self) -> None:
        super().__init__(SimulatedTrainer())
        self.patches_refused = 0

    def patch_trial_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.patches_refused += 1
        error = ApiException(status=404, reason="Not Found")
        error.body = json.dumps({"kind": "Status", "message": f'nastrials.kubenas.dev "{name}" not found'})
        raise error


def test_a_trial_deleted_while_a_pass_runs_is_not_an_error() -> None:
    spec = NASExperimentSpec.model_validate({"budget": {"maxTrials": 2, "parallelTrials": 2}})
    api = DeletingApi()
    backend = KubernetesBackend(api, BODY, spec, lambda *event: None)  # type: ignore[arg-type]
    status = NASExperimentStatus()
    for seconds in range(4):
        status = run_pass("exp", backend, spec, status, 1, at(seconds)).status
    assert api.patches_refused > 0  # the pass did try to write the vanished trials' statuses
    assert not any(c.type == "CreateFailure" and c.status == "True" for c in status.conditions)
