"""Pure builders of the operator's children, and the pure view of a segment from its Job and pods."""

import json

import pytest
from kubenas.api import NASExperimentSpec, NASTrialSpec, NASTrialStatus, TrialPhase
from kubenas.api.errors import SpecError
from kubenas.engine.execute import trainer_input
from kubenas.engine.observe import SegmentState, advance, transition_event
from kubenas.k8s.objects import job_name, nastrial, trial_job
from kubenas.k8s.observe import segment_view
from kubenas.k8s.reconcile import check_cluster_spec
from kubenas.strategies import make_strategy
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
    spec = trainer_input("exp-4", TRIAL, SPEC, None, None, "ns")
    job = trial_job("exp-4", "ns", "uid-trial", spec, 4, "exp", SPEC.trial_template)
    assert job["metadata"]["ownerReferences"][0]["kind"] == "NASTrial"
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1"}  # quantities are strings
    env = {e["name"]: e["value"] for e in container["env"]}
    assert json.loads(env["KUBENAS_TRIAL_SPEC"])["candidate"] == CANDIDATE.to_dict()
    assert env["A"] == "1"
    assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == 3
    # a preempted or evicted pod is replaced (and resumes); a trainer's own failure ends the Job
    [disrupted, exited] = job["spec"]["podFailurePolicy"]["rules"]
    assert disrupted == {"action": "Count", "onPodConditions": [{"type": "DisruptionTarget"}]}
    assert exited["action"] == "FailJob" and exited["onExitCodes"]["values"] == [1, 2]
    assert pod["nodeSelector"] == {"pool": "gpu"}
    assert pod["tolerations"][0]["operator"] == "Exists"
    assert job["spec"]["template"]["metadata"]["labels"]["kubenas.dev/trial"] == "exp-4"


def _job(condition: str | None) -> dict[str, object]:
    conditions = [{"type": condition, "status": "True", "reason": "X", "message": "m"}] if condition else []
    return {"metadata": {"name": "exp-4-e2"}, "status": {"startTime": "t0", "conditions": conditions}}


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


def test_a_segment_follows_its_job_to_a_result() -> None:
    assert segment_view("exp-4", None, []).state is SegmentState.ABSENT
    pending = segment_view("exp-4", _job(None), [_pod("Pending")])
    assert (pending.state, pending.ref, pending.start_time) == (SegmentState.PENDING, "exp-4-e2", "t0")
    assert segment_view("exp-4", _job(None), [_pod("Running")]).state is SegmentState.RUNNING
    # its pod is done but the Job controller has not marked the Job Complete yet: not an interruption
    finishing = segment_view("exp-4", _job(None), [_pod("Succeeded")])
    assert finishing.state is SegmentState.RUNNING
    running = NASTrialStatus(phase=TrialPhase.RUNNING, start_time="t0")
    after = advance(running, finishing, "accuracy", "now")
    assert after.phase is TrialPhase.RUNNING and transition_event("exp-4", running, after, "accuracy") is None
    result = TrialResult(name="exp-4", phase="Succeeded", metrics={"accuracy": 0.9, "loss": 0.3}, epochs=5)
    ended = segment_view("exp-4", _job("Complete"), [_pod("Succeeded", result.to_termination_message())])
    assert (ended.state, ended.result) == (SegmentState.ENDED, result)
    done = advance(NASTrialStatus(phase=TrialPhase.RUNNING), ended, "accuracy", "now")
    assert (done.phase, done.objective_value, done.epochs) == (TrialPhase.SUCCEEDED, 0.9, 5)


def test_a_failed_job_keeps_the_reason() -> None:
    crashed = segment_view("exp-4", _job("Failed"), [_pod("Failed", "Traceback: boom")])
    assert crashed.result is not None and crashed.result.phase == "Failed"
    assert "boom" in crashed.result.message
    deadline = segment_view("exp-4", _job("Failed"), [])
    assert deadline.result is not None and deadline.result.message.startswith("Job failed: X: m")


def test_a_checkpoint_volume_holds_each_trials_output_and_segments_get_their_own_job() -> None:
    volume = {"persistentVolumeClaim": {"claimName": "kubenas-checkpoints"}}
    template = SPEC.trial_template.model_copy(update={"checkpoint_volume": volume})
    spec = trainer_input("exp-4", TRIAL, SPEC, 3, None, "ns")
    job = trial_job("exp-4", "ns", "uid-t", spec, 4, "exp", template, segment=job_name("exp-4", 1))
    assert job["metadata"]["name"] == "exp-4-e1"
    assert job["metadata"]["ownerReferences"][0]["name"] == "exp-4"  # every segment: the same trial
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["volumes"] == [{"name": "scratch", "emptyDir": {}}, {"name": "checkpoints", **volume}]
    assert container["volumeMounts"] == [
        {"name": "scratch", "mountPath": "/tmp"},
        {"name": "checkpoints", "mountPath": "/var/lib/kubenas"},
    ]
    assert container["args"] == ["--output", "/var/lib/kubenas/ns/exp/exp-4", "--resume"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert json.loads(env["KUBENAS_TRIAL_SPEC"])["stopAtEpoch"] == 3
    assert job_name("exp-4", None) == job_name("exp-4", 0) == "exp-4"
    plain = trial_job("exp-4", "ns", "uid-t", spec, 4, "exp", SPEC.trial_template)
    assert [v["name"] for v in plain["spec"]["template"]["spec"]["volumes"]] == ["scratch"]
    assert "args" not in plain["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize(
    ("overrides", "needs"),
    [
        ({"earlyStopping": {"rule": "asha"}}, "earlyStopping.rule asha"),
        ({"earlyStopping": {"rule": "hyperband"}}, "earlyStopping.rule hyperband"),
    ],
)
def test_continued_trials_on_a_cluster_need_a_checkpoint_volume(
    overrides: dict[str, object], needs: str
) -> None:
    spec = NASExperimentSpec.model_validate({"training": {"epochs": 9}, **overrides})
    with pytest.raises(SpecError, match=f"spec.storage: required on a cluster with {needs}"):
        check_cluster_spec(spec, make_strategy(spec))
    volume = {"hostPath": {"path": "/data/kubenas"}}
    ok = spec.model_copy(
        update={"trial_template": spec.trial_template.model_copy(update={"checkpoint_volume": volume})}
    )
    check_cluster_spec(ok, make_strategy(ok))
    check_cluster_spec(SPEC, make_strategy(SPEC))  # nothing continued: no volume needed
