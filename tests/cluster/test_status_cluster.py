"""`kubenas status --cluster`: an experiment read back through the API server, as kubectl shows it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubenas.api.status import NASExperimentStatus, NASTrialSpec, NASTrialStatus

from tests.report.png import assert_sensible_png

from .conftest import get_json, wait_for
from .fixtures import Cluster
from .operator_process import OperatorProcess
from .test_operator import apply, diagnostics, experiment, finished

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def status(*args: str, timeout: float = 120, command: str = "status") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubenas.cli", command, *args],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_status_shows_the_experiment_and_its_trials_as_the_api_server_holds_them(
    kube: Cluster, namespace: str, tmp_path: Path
) -> None:
    with OperatorProcess(kube.kubeconfig, namespace, tmp_path / "operator.log") as operator:
        apply(kube, namespace, experiment("shown", max_trials=2, parallel=2, epochs=2))
        wait_for(
            lambda: finished(kube, namespace, "shown"),
            300,
            "the experiment to finish",
            lambda: diagnostics(kube, namespace, operator),
        )
    nasx = get_json(kube, "nasexperiment", "shown", "-n", namespace)
    items = get_json(kube, "nastrials", "-n", namespace, "-l", "kubenas.dev/experiment=shown")["items"]
    nast = {t["metadata"]["name"]: t for t in items}
    where = ["--cluster", "shown", "-n", namespace, "--kubeconfig", str(kube.kubeconfig)]

    done = status(*where, "-o", "json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert NASExperimentStatus.model_validate(doc["status"]) == NASExperimentStatus.model_validate(
        nasx["status"]
    )
    assert doc["status"]["phase"] == "Succeeded"
    best = nasx["status"]["best"]["trial"]
    assert doc["status"]["best"]["trial"] == best and doc["trials"][0]["name"] == best
    assert sorted(t["name"] for t in doc["trials"]) == sorted(nast) == ["shown-0", "shown-1"]
    for entry in doc["trials"]:
        trial = nast[entry["name"]]
        assert NASTrialSpec.model_validate(entry["spec"]) == NASTrialSpec.model_validate(trial["spec"])
        assert NASTrialStatus.model_validate(entry["status"]) == NASTrialStatus.model_validate(
            trial["status"]
        )
        assert entry["status"]["phase"] == "Succeeded" and len(entry["status"]["curve"]) == 2

    as_yaml = status(*where, "-o", "yaml", "--sort", "name")
    assert as_yaml.returncode == 0, as_yaml.stderr
    assert [t["name"] for t in yaml.safe_load(as_yaml.stdout)["trials"]] == ["shown-0", "shown-1"]

    table = status(*where)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["experiment", "shown:", "Succeeded", "(MaxTrialsReached)"]
    marked = [line.split() for line in lines if line.startswith("*")]
    value = nasx["status"]["best"]["objectiveValue"]
    assert [row[:5] for row in marked] == [["*", best, "Succeeded", f"{value:.4g}", "2/2"]]

    # `kubenas report --cluster`: the same experiment's figures, from the trials' curves
    report = status(*where, "--output", str(tmp_path / "report"), command="report", timeout=300)
    assert report.returncode == 0, report.stderr
    page = tmp_path / "report" / "report.html"
    assert report.stdout.strip() == f"report: {page}" and best in page.read_text()
    figures = sorted((tmp_path / "report").glob("*.png"))
    assert figures, "no figures"
    for figure in figures:
        assert_sensible_png(figure)


def test_a_missing_experiment_or_cluster_is_an_error_naming_it(
    kube: Cluster, namespace: str, tmp_path: Path
) -> None:
    config = ["--kubeconfig", str(kube.kubeconfig)]
    missing = status("--cluster", "nowhere", "-n", namespace, *config)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == f"error: no NASExperiment 'nowhere' in namespace '{namespace}'\n"
    # Without -n: the namespace of the kubeconfig's current context, "default" if it names none.
    kubeconfig = yaml.safe_load(kube.kubeconfig.read_text())
    context = next(c for c in kubeconfig["contexts"] if c["name"] == kubeconfig["current-context"])
    default = status("--cluster", "nowhere", *config)
    assert default.returncode == 1
    expected = context["context"].get("namespace") or "default"
    assert default.stderr == f"error: no NASExperiment 'nowhere' in namespace '{expected}'\n"

    nothing = status("--cluster", "nowhere", "--kubeconfig", str(tmp_path / "absent"))
    assert nothing.returncode == 1 and nothing.stderr.startswith(f"error: kubeconfig {tmp_path / 'absent'}: ")
    # The same cluster's kubeconfig with a context namespace, and its server moved to a closed port.
    for entry in kubeconfig["clusters"]:
        entry["cluster"]["server"] = "https://127.0.0.1:1"
    context["context"]["namespace"] = "team"
    (tmp_path / "closed").write_text(yaml.safe_dump(kubeconfig))
    closed = status("--cluster", "shown", "--kubeconfig", str(tmp_path / "closed"))
    assert closed.returncode == 1
    assert closed.stderr.startswith(
        "error: cannot read NASExperiment 'shown' in namespace 'team' from https://127.0.0.1:1: "
    )
    assert "Connection refused" in closed.stderr
