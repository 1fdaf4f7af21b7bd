"""The Kubernetes backend's channels besides the API server: Prometheus for running trials' epochs, object
storage for a result the termination message could not carry. The API server is the in-memory stand-in of
simulated_backends; S3 is a real server (moto) and Prometheus a closed port (unreachable) or a real one."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from kubenas.api import NASExperimentSpec, NASExperimentStatus, NASTrialStatus, TrialPhase
from kubenas.engine.decide import decide
from kubenas.engine.execute import execute
from kubenas.engine.observe import SegmentState, observe
from kubenas.k8s.backend import KubernetesBackend
from kubenas.k8s.objects import job_name
from kubenas_trainer.spec import TrialResult

from tests.services.net import free_port
from tests.services.s3 import CREDENTIALS, S3Server

from .simulated_backends import FakeKubeApi, SimulatedTrainer

BODY = {"metadata": {"namespace": "ns", "name": "exp", "uid": "uid-exp"}}


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    with S3Server() as server:
        for key, value in CREDENTIALS.items():
            monkeypatch.setenv(key, value)  # the operator's own credentials
        server.client().create_bucket(Bucket="runs")
        yield server


def launched(spec: NASExperimentSpec) -> tuple[FakeKubeApi, KubernetesBackend]:
    """One trial whose first segment's Job has ended, its termination message without its curve."""
    api = FakeKubeApi(SimulatedTrainer())
    backend = KubernetesBackend(api, BODY, spec, lambda *event: None)  # type: ignore[arg-type]
    seen = observe(backend, spec, "t0")
    execute(decide("exp", spec, seen.records, NASExperimentStatus(), 1, "t0"), backend, spec, seen, "t0")
    api.finish_all()
    message = TrialResult(name="exp-0", phase="Succeeded", metrics={"accuracy": 0.9}, epochs=3)
    api.pods[job_name("exp-0", None)]["status"]["containerStatuses"][0]["state"]["terminated"]["message"] = (
        message.to_termination_message()
    )
    return api, backend


def spec_with(**fields: object) -> NASExperimentSpec:
    return NASExperimentSpec.model_validate({"budget": {"maxTrials": 1}, "training": {"epochs": 3}, **fields})


def test_a_result_too_long_for_the_termination_message_is_read_from_storage(s3: S3Server) -> None:
    spec = spec_with(storage={"bucket": "runs", "endpoint": s3.endpoint})
    _, backend = launched(spec)
    full = TrialResult(
        name="exp-0", phase="Succeeded", metrics={"accuracy": 0.9}, epochs=3, curve=[0.5, 0.8, 0.9]
    )
    s3.client().put_object(
        Bucket="runs", Key="kubenas/ns/exp/exp-0/result.json", Body=json.dumps(full.to_dict())
    )
    [trial] = backend.observe()
    assert trial.segment.state is SegmentState.ENDED and trial.segment.result == full
    assert backend.health() == []


def test_while_storage_is_down_the_segment_waits_and_a_condition_says_why(s3: S3Server) -> None:
    spec = spec_with(storage={"bucket": "runs", "endpoint": s3.endpoint})
    _, backend = launched(spec)
    s3.stop()
    [trial] = backend.observe()
    assert trial.segment.state is SegmentState.RUNNING  # its end waits for the full result
    [health] = backend.health()
    assert (health.type, health.ok, health.reason) == ("StorageAvailable", False, "StorageUnreachable")
    assert "result.json" in health.message
    s3.start()
    [trial] = backend.observe()
    assert trial.segment.state is SegmentState.ENDED and backend.health() == []


def test_an_older_segments_result_in_storage_is_not_taken(s3: S3Server) -> None:
    spec = spec_with(storage={"bucket": "runs", "endpoint": s3.endpoint})
    api, backend = launched(spec)
    name = "exp-0"
    api.trials[name]["status"] = NASTrialStatus(phase=TrialPhase.PENDING, epochs=3).to_dict()
    later = job_name(name, 3)  # the segment after epoch 3, which crashed
    api.jobs[later] = api.jobs.pop(job_name(name, None))
    api.jobs[later]["metadata"]["name"] = later
    api.pods[later] = api.pods.pop(job_name(name, None))
    api.pods[later]["metadata"]["labels"]["job-name"] = later
    terminated = api.pods[later]["status"]["containerStatuses"][0]["state"]["terminated"]
    terminated["message"] = "Traceback ... MemoryError"
    old = TrialResult(name=name, phase="Paused", metrics={"accuracy": 0.8}, epochs=3, curve=[0.5, 0.7, 0.8])
    s3.client().put_object(
        Bucket="runs", Key=f"kubenas/ns/exp/{name}/result.json", Body=json.dumps(old.to_dict())
    )
    [trial] = backend.observe()
    assert trial.segment.result is not None and trial.segment.result.phase == "Failed"
    assert "MemoryError" in trial.segment.result.message


def test_an_unreachable_prometheus_is_a_condition_and_no_live_epochs() -> None:
    spec = spec_with(
        metrics={"pushgateway": "http://127.0.0.1:1", "prometheus": f"http://127.0.0.1:{free_port()}"}
    )
    api = FakeKubeApi(SimulatedTrainer())
    backend = KubernetesBackend(api, BODY, spec, lambda *event: None)  # type: ignore[arg-type]
    assert backend.observe() == []
    [health] = backend.health()
    assert (health.type, health.ok, health.reason) == ("MetricsAvailable", False, "PrometheusUnreachable")
    assert "did not answer" in health.message and "wait" in health.message
