"""`kubenas status` on a finished local run, as a user would call it (stdout a pipe: plain text)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .local_run import run_manifest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    doc = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())
    doc["spec"]["budget"] = {"maxTrials": 3, "parallelTrials": 2, "maxFailedTrials": 1}
    doc["spec"]["training"]["epochs"] = 2
    doc["spec"]["objective"].pop("target", None)
    tmp = tmp_path_factory.mktemp("status")
    run_manifest(doc, tmp)
    return tmp / "runs" / "digits"


def status(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubenas.cli", "status", *args],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_table_shows_the_phase_the_best_trial_and_every_trial(run_dir: Path) -> None:
    best = json.loads((run_dir / "best.json").read_text())
    done = status(str(run_dir))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["experiment", "digits:", "Succeeded", "(MaxTrialsReached)"]
    assert next(line for line in lines if line.startswith("best ")).split()[1] == best["trial"]
    table = lines[lines.index("") + 1 :]
    assert table[0].split() == ["TRIAL", "PHASE", "ACCURACY", "EPOCHS", "TIME", "CANDIDATE"]
    rows = [line.split() for line in table[1:]]
    assert len(rows) == 3 and "\x1b[" not in done.stdout  # a pipe gets plain text
    assert rows[0][:5] == ["*", best["trial"], "Succeeded", f"{best['objectiveValue']:.4g}", "2/2"]
    names = [rows[0][1], *(row[0] for row in rows[1:])]  # only the best row has a mark
    assert sorted(names) == ["digits-0", "digits-1", "digits-2"]
    accuracies = [float(rows[0][3]), *(float(row[2]) for row in rows[1:])]
    assert accuracies == sorted(accuracies, reverse=True)


def test_json_is_the_status_and_the_trials_best_first(run_dir: Path) -> None:
    recorded = json.loads((run_dir / "status.json").read_text())
    best = json.loads((run_dir / "best.json").read_text())
    done = status(str(run_dir), "-o", "json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["status"] == recorded and doc["status"]["phase"] == "Succeeded"
    assert doc["status"]["best"]["trial"] == best["trial"]
    trials = doc["trials"]
    assert len(trials) == 3 and {t["name"] for t in trials} == {"digits-0", "digits-1", "digits-2"}
    assert trials[0]["name"] == best["trial"]
    values = [t["status"]["objectiveValue"] for t in trials]
    assert values == sorted(values, reverse=True)  # accuracy: highest first
    by_name = status(str(run_dir), "-o", "json", "--sort", "name")
    assert [t["name"] for t in json.loads(by_name.stdout)["trials"]] == ["digits-0", "digits-1", "digits-2"]


def test_a_directory_without_a_run_is_an_error_naming_it(tmp_path: Path) -> None:
    done = status(str(tmp_path))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == f"error: {tmp_path}: not a kubenas run directory (no experiment.yaml)"
    flags = status(str(tmp_path), "-n", "default")
    assert flags.returncode == 2 and "--namespace and --kubeconfig go with --cluster" in flags.stderr
