"""Hardened trial pods: what the real API server makes of them, and whether the real trainer lives with it.

The API server here enforces Pod Security admission (`restricted`), Priority and ServiceAccount admission
as any cluster does. The node agent runs pods as local processes and ignores securityContext and emptyDir
volumes, so it cannot show that the trainer works on a read-only root filesystem; the second test does,
honestly and without a container runtime: it runs the trainer exactly as the trial's pod spec says
(command, env, working directory) in a user + mount namespace where every filesystem is remounted
read-only and a fresh directory is mounted on /tmp, as the scratch emptyDir is. (It runs as the
namespace's root, mapped to the test's own user: a non-root uid is what the API server checks above.)
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubenas.api import NASExperiment, NASTrialSpec
from kubenas.engine.execute import trainer_input
from kubenas.k8s.objects import trial_job
from kubenas.strategies import make_strategy

from .conftest import ROOT, get_json, wait_for
from .fixtures import Cluster
from .operator_process import OperatorProcess
from .test_operator import apply, condition, diagnostics, experiment, finished

EXAMPLE = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())


@pytest.mark.cluster
@pytest.mark.slow
def test_trial_pods_pass_restricted_pod_security_and_the_trainer_succeeds(
    kube: Cluster, namespace: str, tmp_path: Path
) -> None:
    kube.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    refused = kube.kubectl(
        "run", "plain", "-n", namespace, "--image=x", "--command", "--", "true", check=False
    )
    assert (
        refused.returncode != 0 and "violates PodSecurity" in refused.stderr
    )  # enforced: a test that can fail
    kube.kubectl("create", "serviceaccount", "trainer", "-n", namespace)
    priority = f"kubenas-{namespace}"
    kube.kubectl("create", "priorityclass", priority, "--value=1000")
    try:
        doc = experiment("hard", max_trials=1, parallel=1, epochs=2)
        doc["spec"]["trialTemplate"].update(
            serviceAccountName="trainer",
            priorityClassName=priority,
            activeDeadlineSeconds=900,
            ttlSecondsAfterFinished=3600,
        )
        with OperatorProcess(kube.kubeconfig, namespace, tmp_path / "operator.log") as operator:
            apply(kube, namespace, doc)
            done = wait_for(
                lambda: finished(kube, namespace, "hard"),
                300,
                "the experiment to finish",
                lambda: diagnostics(kube, namespace, operator),
            )
    finally:
        kube.kubectl("delete", "priorityclass", priority, check=False)

    assert condition(done, "Succeeded") is not None, done["status"]
    [job] = get_json(kube, "jobs", "-n", namespace)["items"]
    [pod] = get_json(kube, "pods", "-n", namespace)["items"]
    assert (job["spec"]["activeDeadlineSeconds"], job["spec"]["ttlSecondsAfterFinished"]) == (900, 3600)
    spec = pod["spec"]
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    [container] = spec["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }
    # ServiceAccount admission honoured automountServiceAccountToken: false, no token volume was added
    assert spec["serviceAccountName"] == "trainer" and spec["automountServiceAccountToken"] is False
    assert [v["name"] for v in spec["volumes"]] == ["scratch"] and "emptyDir" in spec["volumes"][0]
    assert (spec["priorityClassName"], spec["priority"]) == (priority, 1000)  # resolved by admission
    assert pod["status"]["phase"] == "Succeeded"


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-r", "-m", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def _read_only_everything(scratch: Path) -> str:
    """Shell lines for a fresh mount namespace: scratch on /tmp, then every other filesystem read-only
    (those of /proc, /sys and /dev stay as a container runtime gives them), then a check that it took."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if not point.startswith(("/proc", "/sys", "/dev")) and point not in mounts:
            mounts.append(point)
    remounts = "\n".join(f"mount -o remount,bind,ro '{m}' 2>/dev/null || [ '{m}' != / ]" for m in mounts)
    # The image's own files stay where they are: a checkout or venv under /tmp (as CI's may be) is
    # bound into the scratch dir before the scratch covers /tmp, then made read-only there.
    keep = []
    for path in {Path(__file__).resolve().parents[2], Path(sys.prefix).resolve()}:
        if path.is_relative_to("/tmp"):
            inside = scratch / path.relative_to("/tmp")
            inside.mkdir(parents=True, exist_ok=True)
            keep.append((path, inside, Path("/tmp") / path.relative_to("/tmp")))
    binds = "".join(f"mount --bind '{path}' '{inside}'\n" for path, inside, _ in keep)
    remounts += "".join(f"\nmount -o remount,bind,ro '{seen}'" for _, _, seen in keep)
    return (
        f"set -e\n{binds}mount --rbind '{scratch}' /tmp\n{remounts}\n"
        f"if touch /.probe '{sys.prefix}/.probe' 2>/dev/null; then echo 'root still writable'; exit 97; fi\n"
    )


@pytest.mark.slow
@pytest.mark.skipif(
    not _unshare_works(), reason="needs unprivileged user and mount namespaces (unshare -r -m)"
)
def test_the_trainer_writes_only_its_scratch_dir_under_a_read_only_root(tmp_path: Path) -> None:
    doc: dict[str, Any] = copy.deepcopy(EXAMPLE)
    doc["spec"]["training"]["epochs"] = 1
    spec = NASExperiment.model_validate(doc).spec
    candidate = make_strategy(spec).ask([], 1)[0]
    trial = NASTrialSpec(experiment="ro", index=0, candidate_key=candidate.key(), seed=3, candidate=candidate)
    given = trainer_input("ro-0", trial, spec, None, None, "ns")
    job = trial_job("ro-0", "ns", "uid", given, 0, "ro", spec.trial_template)
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

    scratch = tmp_path / "scratch"  # the emptyDir
    scratch.mkdir()
    env = {e["name"]: e["value"] for e in container["env"]}
    env.update(
        PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin",  # the image's PATH
        KUBENAS_TERMINATION_LOG="/tmp/termination-log",  # kubelet's file, a mount of its own in a pod
        KUBENAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
    )
    argv = " ".join(f"'{a}'" for a in [*container["command"], *container.get("args", [])])
    script = _read_only_everything(scratch) + f"cd '{container['workingDir']}'\nexec {argv}\n"
    run = subprocess.run(
        ["unshare", "-r", "-m", "env", "-i", *(f"{k}={v}" for k, v in env.items()), "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    result = json.loads((scratch / "termination-log").read_text())
    assert result["phase"] == "Succeeded" and result["epochs"] == 1, result
    written = {p.relative_to(scratch).parts[0] for p in scratch.rglob("*")}
    assert "kubenas-trial" in written  # its output: relative to the working directory, the emptyDir
    assert (scratch / "kubenas-trial" / "result.json").exists()


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("template", "message"),
    [
        ({"securityContext": {"runAsUser": 0}}, "must not be 0 with runAsNonRoot true"),
        ({"securityContext": {"seccompProfile": {"type": "Localhost"}}}, "must be set with type Localhost"),
        ({"ttlSecondsAfterFinished": 5}, "should be greater than or equal to 60"),
        ({"priorityClassName": "Low_Priority"}, "priorityClassName"),
    ],
)
def test_kubectl_apply_refuses_a_template_no_pod_could_run_with(
    kube: Cluster, namespace: str, template: dict[str, Any], message: str
) -> None:
    doc = experiment("refused", max_trials=1, parallel=1, epochs=1)
    doc["spec"]["trialTemplate"].update(template)
    refused = apply(kube, namespace, doc, check=False)
    assert refused.returncode != 0 and message in refused.stderr, refused.stderr
    with pytest.raises(ValueError, match=message.split()[-1]):
        NASExperiment.model_validate({**doc, "metadata": {"name": "refused"}})
