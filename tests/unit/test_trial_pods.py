"""Trial pods as a production cluster wants them: hardened, on GPUs of any kind, queued by Kueue, and
shaped by the operator's --trial-defaults. Pure builders and views; the cluster tests run them for real."""

import json
from typing import Any

import pytest
import yaml
from kubenas.api import NASExperimentSpec, NASTrialSpec, NASTrialStatus, TrialPhase
from kubenas.api.crd import custom_resource_definitions
from kubenas.api.errors import SpecError, parse_model
from kubenas.api.pod import gpus
from kubenas.cli import main
from kubenas.engine.execute import trainer_input
from kubenas.engine.observe import QUEUED, SegmentState, SegmentView, advance, transition_event
from kubenas.k8s.defaults import OperatorDefaults, parse_trial_defaults
from kubenas.k8s.objects import QUEUE_LABEL, trial_job
from kubenas.k8s.observe import segment_view
from kubenas.strategies import make_strategy


def spec_of(template: dict[str, Any]) -> NASExperimentSpec:
    return NASExperimentSpec.model_validate({"trialTemplate": template})


def job_of(template: dict[str, Any]) -> dict[str, Any]:
    spec = spec_of(template)
    candidate = make_strategy(spec).ask([], 1)[0]
    trial = NASTrialSpec(
        experiment="exp", index=0, candidate_key=candidate.key(), seed=1, candidate=candidate
    )
    given = trainer_input("exp-0", trial, spec, None, None, "ns")
    return trial_job("exp-0", "ns", "uid", given, 0, "exp", spec.trial_template)


def test_trial_pods_are_hardened_by_default() -> None:
    job = job_of({})
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }
    assert pod["automountServiceAccountToken"] is False
    # everything the trainer writes lies on the scratch emptyDir
    assert pod["volumes"] == [{"name": "scratch", "emptyDir": {}}]
    assert container["volumeMounts"] == [{"name": "scratch", "mountPath": "/tmp"}]
    assert container["workingDir"] == "/tmp"
    env = {e["name"]: e["value"] for e in container["env"]}
    for name in ("TMPDIR", "HOME", "XDG_CACHE_HOME", "TORCH_HOME", "MPLCONFIGDIR"):
        assert env[name] == "/tmp" or env[name].startswith("/tmp/"), name
    for absent in ("priorityClassName", "serviceAccountName"):
        assert absent not in pod
    for absent in ("suspend", "ttlSecondsAfterFinished", "activeDeadlineSeconds"):
        assert absent not in job["spec"]


def test_the_template_shapes_security_placement_and_lifetime() -> None:
    job = job_of(
        {
            "securityContext": {
                "runAsUser": 1000,
                "fsGroup": 2000,
                "readOnlyRootFilesystem": False,
                "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/trainer.json"},
            },
            "serviceAccountName": "kubenas-trial",
            "priorityClassName": "research-low",
            "activeDeadlineSeconds": 3600,
            "ttlSecondsAfterFinished": 600,
            "env": [{"name": "HOME", "value": "/tmp/home"}],
        }
    )
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert pod["securityContext"]["runAsUser"] == 1000 and pod["securityContext"]["fsGroup"] == 2000
    assert pod["securityContext"]["seccompProfile"] == {
        "type": "Localhost",
        "localhostProfile": "profiles/trainer.json",
    }
    assert container["securityContext"]["readOnlyRootFilesystem"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}  # never negotiable
    assert (pod["serviceAccountName"], pod["priorityClassName"]) == ("kubenas-trial", "research-low")
    assert pod["automountServiceAccountToken"] is False
    assert (job["spec"]["activeDeadlineSeconds"], job["spec"]["ttlSecondsAfterFinished"]) == (3600, 600)
    homes = [e["value"] for e in container["env"] if e["name"] == "HOME"]
    assert homes == ["/tmp/home"]  # the template's own, once


@pytest.mark.parametrize(
    ("limits", "gpu_count"),
    [
        ({"nvidia.com/gpu": 2}, 2),
        ({"nvidia.com/mig-1g.10gb": 1}, 1),
        ({"nvidia.com/mig-3g.40gb": "2"}, 2),
        ({"nvidia.com/gpu.shared": 1}, 1),
        ({"amd.com/gpu": 1}, 1),
        ({"example.com/fpga": 1}, 0),
        ({"cpu": "4"}, 0),
    ],
)
def test_any_extended_resource_passes_through_and_gpus_are_counted(
    limits: dict[str, Any], gpu_count: int
) -> None:
    extended = {k: v for k, v in limits.items() if "/" in k}
    job = job_of({"resources": {"requests": {"cpu": "1", **extended}, "limits": limits}})
    resources = job["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["limits"] == {k: str(v) for k, v in limits.items()}
    assert gpus(spec_of({"resources": {"limits": limits}}).trial_template.resources) == gpu_count


def test_a_queue_name_labels_the_job_for_kueue_and_creates_it_suspended() -> None:
    job = job_of({"queueName": "team-a"})
    assert job["metadata"]["labels"][QUEUE_LABEL] == "team-a"
    assert job["spec"]["suspend"] is True
    assert QUEUE_LABEL not in job["spec"]["template"]["metadata"]["labels"]  # Kueue reads the Job's


def test_a_suspended_job_is_queued_not_running_and_its_admission_is_no_interruption() -> None:
    job = {"metadata": {"name": "exp-0"}, "spec": {"suspend": True}, "status": {}}
    queued = segment_view("exp-0", job, [])
    assert (queued.state, queued.active, queued.start_time) == (SegmentState.QUEUED, True, None)
    pending = NASTrialStatus()
    waiting = advance(pending, queued, "accuracy", "2026-01-01T00:00:00Z")
    assert (waiting.phase, waiting.reason, waiting.start_time) == (TrialPhase.PENDING, QUEUED, None)
    event = transition_event("exp-0", pending, waiting, "accuracy")
    assert event is not None and (event.type, event.reason) == ("Normal", "TrialQueued")
    assert advance(waiting, queued, "accuracy", "2026-01-01T00:05:00Z") == waiting  # no write per pass
    admitted = {**job, "spec": {"suspend": False}, "status": {"startTime": "2026-01-01T00:10:00Z"}}
    running = advance(
        waiting, segment_view("exp-0", admitted, [{"status": {"phase": "Running"}}]), "accuracy", "x"
    )
    assert (running.phase, running.reason, running.message) == (TrialPhase.RUNNING, None, "")
    assert running.start_time == running.running_since == "2026-01-01T00:10:00Z"
    # Kueue preempts it (suspends the Job again): queued once more, its run so far counted, no interruption
    requeued = advance(running, queued, "accuracy", "2026-01-01T00:40:00Z")
    assert (requeued.phase, requeued.reason, requeued.running_since) == (TrialPhase.PENDING, QUEUED, None)
    assert requeued.run_seconds == 1800
    event = transition_event("exp-0", running, requeued, "accuracy")
    assert event is not None and event.reason == "TrialQueued"


def test_run_time_adds_up_over_runs_and_ends_at_the_segment_end() -> None:
    from kubenas_trainer.spec import TrialResult

    status = NASTrialStatus(phase=TrialPhase.PENDING, run_seconds=100.0)
    segment = SegmentView(SegmentState.RUNNING, "exp-0-e2", start_time="2026-01-01T01:00:00Z")
    running = advance(status, segment, "accuracy", "2026-01-01T01:00:05Z")
    assert running.running_since == "2026-01-01T01:00:00Z" and running.run_seconds == 100.0
    result = TrialResult(name="exp-0", phase="Succeeded", metrics={"accuracy": 0.9}, epochs=4)
    ended = SegmentView(
        SegmentState.ENDED, "exp-0-e2", result, "2026-01-01T01:00:00Z", "2026-01-01T01:10:00Z"
    )
    done = advance(running, ended, "accuracy", "2026-01-01T01:11:00Z")
    assert (done.phase, done.run_seconds, done.running_since) == (TrialPhase.SUCCEEDED, 700.0, None)


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        (
            {"securityContext": {"runAsUser": 0}},
            "spec.trialTemplate.securityContext: runAsUser: must not be 0",
        ),
        (
            {"securityContext": {"seccompProfile": {"type": "Localhost"}}},
            "spec.trialTemplate.securityContext.seccompProfile: localhostProfile: must be set",
        ),
        ({"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}, "securityContext.capabilities"),
        ({"priorityClassName": "Not_A_Name"}, "spec.trialTemplate.priorityClassName"),
        ({"queueName": "q" * 64}, "spec.trialTemplate.queueName"),
        ({"ttlSecondsAfterFinished": 5}, "spec.trialTemplate.ttlSecondsAfterFinished"),
        ({"resources": {"limits": {"nvidia.com/mig-1g.10gb": "500m"}}}, "whole number"),
    ],
)
def test_bad_template_fields_are_named(template: dict[str, Any], problem: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_model(NASExperimentSpec, {"trialTemplate": template}, prefix="spec")
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_root_is_allowed_only_when_asked_for_explicitly() -> None:
    template = spec_of({"securityContext": {"runAsUser": 0, "runAsNonRoot": False}}).trial_template
    assert template.security_context.run_as_user == 0


def test_operator_defaults_fill_the_fields_an_experiment_leaves_out() -> None:
    defaults = parse_trial_defaults(
        json.dumps(
            {
                "image": "registry.example/trainer:1",
                "priorityClassName": "batch",
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                "resources": {"limits": {"nvidia.com/gpu": 1}},
            }
        )
    )
    own = NASExperimentSpec.model_validate(
        {"trialTemplate": {"resources": {"limits": {"nvidia.com/mig-1g.10gb": 1}}, "queueName": "q"}}
    )
    merged = OperatorDefaults(trial_template=defaults).apply(own).trial_template
    assert merged.image == "registry.example/trainer:1" and merged.priority_class_name == "batch"
    assert merged.tolerations[0].key == "nvidia.com/gpu" and merged.queue_name == "q"
    assert merged.resources.limits == {"nvidia.com/mig-1g.10gb": 1}  # the experiment's, whole: not merged
    untouched = OperatorDefaults(trial_template=defaults).apply(NASExperimentSpec()).trial_template
    assert untouched.backoff_limit == 3 and untouched.image == "registry.example/trainer:1"
    assert OperatorDefaults().apply(own).trial_template == own.trial_template


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "--trial-defaults: not JSON"),
        ("[1]", "--trial-defaults: must be a JSON object"),
        ('{"imagePullPolicy": "Sometimes"}', "--trial-defaults.imagePullPolicy: Input should be"),
        ('{"resources": {"limits": {"gpu": 1}}}', "--trial-defaults.resources: limits: every key"),
        ('{"nodeSelektor": {}}', "--trial-defaults.nodeSelektor: Extra inputs are not permitted"),
    ],
)
def test_bad_trial_defaults_stop_the_operator_at_start_naming_the_field(
    text: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SpecError) as caught:
        parse_trial_defaults(text)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems
    assert main(["operator", "--trial-defaults", text]) == 2  # before it connects anywhere
    assert problem in capsys.readouterr().err


def test_the_crd_leaves_trial_template_defaults_to_the_operator() -> None:
    """A default the API server filled in would look set by the experiment, and beat --trial-defaults."""
    crd = yaml.safe_load(yaml.safe_dump(custom_resource_definitions()["nasexperiments.yaml"]))
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    template = spec["properties"]["trialTemplate"]

    def defaults(node: dict[str, Any]) -> list[str]:
        found = ["."] if "default" in node else []
        for key, child in node.get("properties", {}).items():
            found += [f"{key}{d}" for d in defaults(child)]
        return found

    assert defaults(template) == []
    assert (
        "Default: 10001."
        in template["properties"]["securityContext"]["properties"]["runAsUser"]["description"]
    )
    assert spec["properties"]["budget"]["properties"]["maxTrials"]["default"] == 10  # elsewhere: kept
