"""Pure builders of the operator's children and the pure observation of their state."""

import json

from kubenas.api import NASExperimentSpec, NASTrialSpec, NASTrialStatus, TrialPhase
from kubenas.k8s.manifests import nastrial, trial_job
from kubenas.k8s.observe import observe_trial
from kubenas.strategies import make_strategy
from kubenas.trials import trial_spec
from kubenas_trainer.spec import TrialResult

SPEC = NASExperimentSpec.model_validate(
    {
        "trialTemplate": {
            "nodeSelector": {"pool": "gpu"},
            "env": [{"name": "A", "value": "1"}],
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        }
    }
)
CANDIDATE = make_strategy(SPEC).ask([], 1)[0]
TRIAL = NASTrialSpec(experiment="exp", index=4, candidate_key=CANDIDATE.key(), seed=11, candidate=CANDIDATE)


def test_nastrial_is_owned_by_its_experiment_and_labelled() -> None:
    body = nastrial("exp-4", "ns", "uid-exp", TRIAL)
    assert body["metadata"]["name"] == "exp-4"
    owner = body["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "NASExperiment",
        "exp",
        "uid-exp",
        True,
    )
    assert body["metadata"]["labels"]["kubenas.dev/experiment"] == "exp"
    assert NASTrialSpec.model_validate(body["spec"]) == TRIAL


def test_job_carries_the_trial_spec_resources_and_placement() -> None:
    spec = trial_spec("exp-4", TRIAL, SPEC.training)
    job = trial_job("exp-4", "ns", "uid-trial", spec, 4, "exp", SPEC.trial_template)
    assert job["metadata"]["ownerReferences"][0]["kind"] == "NASTrial"
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1"}  # quantities are strings
    env = {e["name"]: e["value"] for e in container["env"]}
    assert json.loads(env["KUBENAS_TRIAL_SPEC"])["candidate"] == CANDIDATE.to_dict()
    assert env["A"] == "1"
    assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == 0
    assert pod["nodeSelector"] == {"pool": "gpu"}
    assert pod["tolerations"][0]["operator"] == "Exists"
    assert job["spec"]["template"]["metadata"]["labels"]["kubenas.dev/trial"] == "exp-4"


def _job(condition: str | None) -> dict[str, object]:
    conditions = [{"type": condition, "status": "True", "reason": "X", "message": "m"}] if condition else []
    return {"status": {"startTime": "t0", "conditions": conditions}}


def _pod(phase: str, message: str | None = None) -> dict[str, object]:
    status: dict[str, object] = {"phase": phase}
    if message is not None:
        status["containerStatuses"] = [
            {
                "name": "trainer",
                "state": {"terminated": {"exitCode": 0, "message": message, "finishedAt": "t1"}},
            }
        ]
    return {"status": status}


def test_observe_follows_the_job_to_a_result() -> None:
    pending = NASTrialStatus()
    assert observe_trial("exp-4", pending, None, [], "accuracy", "now") == pending
    running = observe_trial("exp-4", pending, _job(None), [_pod("Running")], "accuracy", "now")
    assert running.phase is TrialPhase.RUNNING and running.start_time == "t0"
    result = TrialResult(name="exp-4", phase="Succeeded", metrics={"accuracy": 0.9, "loss": 0.3}, epochs=5)
    done = observe_trial(
        "exp-4",
        running,
        _job("Complete"),
        [_pod("Succeeded", result.to_termination_message())],
        "accuracy",
        "now",
    )
    assert (done.phase, done.objective_value, done.epochs) == (TrialPhase.SUCCEEDED, 0.9, 5)
    assert observe_trial("exp-4", done, None, [], "accuracy", "later") == done  # finished is final


def test_observe_failed_job_keeps_the_reason() -> None:
    crashed = observe_trial(
        "exp-4", NASTrialStatus(), _job("Failed"), [_pod("Failed", "Traceback: boom")], "accuracy", "now"
    )
    assert crashed.phase is TrialPhase.FAILED and "boom" in crashed.message
    deadline = observe_trial("exp-4", NASTrialStatus(), _job("Failed"), [], "accuracy", "now")
    assert deadline.phase is TrialPhase.FAILED and deadline.message.startswith("Job failed: X: m")


def test_a_result_without_the_objective_metric_fails_the_trial() -> None:
    from kubenas.trials import status_from_result

    missing = TrialResult(name="t", phase="Succeeded", metrics={"loss": 0.2}, epochs=3)
    status = status_from_result(missing, "accuracy", "now", "then")
    assert (status.phase, status.objective_value) == (TrialPhase.FAILED, None)
    assert status.message == "the trainer reported no 'accuracy' metric" and status.metrics == {"loss": 0.2}
    ok = status_from_result(missing, "loss", "now", "then")
    assert (ok.phase, ok.objective_value, ok.start_time, ok.completion_time) == (
        TrialPhase.SUCCEEDED,
        0.2,
        "then",
        "now",
    )
