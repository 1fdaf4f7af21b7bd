"""`kubenas run` end to end: trials as parallel local processes, results on disk, restart without loss."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .local_run import assert_one_split

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def manifest(tmp_path: Path, max_trials: int = 3, epochs: int = 3, target: float | None = None) -> Path:
    doc = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())
    doc["spec"]["budget"] = {"maxTrials": max_trials, "parallelTrials": 2, "maxFailedTrials": 1}
    doc["spec"]["training"]["epochs"] = epochs
    doc["spec"]["objective"].pop("target", None)
    if target is not None:
        doc["spec"]["objective"]["target"] = target
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def kubenas(*args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, "-m", "kubenas.cli", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        **kwargs,
    )  # type: ignore[call-overload]


def test_run_finishes_with_every_trial_and_the_best(tmp_path: Path) -> None:
    proc = kubenas("run", str(manifest(tmp_path)), "--output", str(tmp_path / "runs"))
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    run_dir = tmp_path / "runs" / "digits"
    status = json.loads((run_dir / "status.json").read_text())
    assert status["phase"] == "Succeeded" and status["progress"] == "3/3"
    trials = {p.parent.name: json.loads(p.read_text()) for p in run_dir.glob("trials/*/status.json")}
    assert sorted(trials) == ["digits-0", "digits-1", "digits-2"]
    assert all(t["phase"] == "Succeeded" for t in trials.values())
    best_name = max(trials, key=lambda n: (trials[n]["objectiveValue"], -int(n.split("-")[1])))
    assert status["best"]["trial"] == best_name
    assert status["best"]["objectiveValue"] == trials[best_name]["objectiveValue"]
    assert json.loads((run_dir / "best.json").read_text())["trial"] == best_name
    assert "digits-0 succeeded: accuracy=" in out and f"best trial: {best_name}" in out
    assert_one_split(run_dir)


def test_killed_run_resumes_without_repeating_or_losing_a_trial(tmp_path: Path) -> None:
    path, runs = manifest(tmp_path, max_trials=4, epochs=40), tmp_path / "runs"
    proc = kubenas("run", str(path), "--output", str(runs), start_new_session=True)
    trials_dir = runs / "digits" / "trials"
    deadline = time.monotonic() + 120
    while not list(trials_dir.glob("*/metrics.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its trainers die mid-trial
    proc.communicate()
    before = {p.parent.name: json.loads(p.read_text()) for p in trials_dir.glob("*/trial.json")}
    unfinished = [json.loads(p.read_text())["phase"] for p in trials_dir.glob("*/status.json")]
    assert before and set(unfinished) <= {"Pending", "Running"}

    resumed = kubenas("run", str(manifest(tmp_path, max_trials=4, epochs=2)), "--output", str(runs))
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    if "Running" in unfinished:  # the new runner finds no process for it: it resumes the checkpoint
        assert "interrupted: nothing runs it any more: it resumes from its last checkpoint" in out
    after = {p.parent.name: json.loads(p.read_text()) for p in trials_dir.glob("*/trial.json")}
    assert sorted(after) == ["digits-0", "digits-1", "digits-2", "digits-3"]
    assert all(after[name] == spec for name, spec in before.items())  # same candidates, not re-drawn
    assert all(json.loads(p.read_text())["phase"] == "Succeeded" for p in trials_dir.glob("*/status.json"))


def test_identical_candidates_train_once(tmp_path: Path) -> None:
    doc = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())
    doc["spec"]["searchSpace"] = {
        "layers": {"count": {"values": [1]}, "units": {"values": [16]}, "activations": ["relu"]},
        "hyperparameters": {
            "learningRate": {"values": [0.01]},
            "optimizers": ["adam"],
            "batchSize": {"values": [64]},
        },
    }
    # Three slots: the twins proposed while digits-0 trains wait for its result instead of training.
    doc["spec"]["budget"] = {"maxTrials": 3, "parallelTrials": 3}
    doc["spec"]["training"]["epochs"] = 2
    doc["spec"]["objective"].pop("target")
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(doc))
    proc = kubenas("run", str(path), "--output", str(tmp_path / "runs"))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "digits-1 waits for the result of digits-0" in out
    trials_dir = tmp_path / "runs" / "digits" / "trials"
    statuses = {p.parent.name: json.loads(p.read_text()) for p in trials_dir.glob("*/status.json")}
    assert sorted(statuses) == ["digits-0", "digits-1", "digits-2"]
    assert [p.parent.name for p in trials_dir.glob("*/trainer.log")] == ["digits-0"]  # one process ran
    for name in ("digits-1", "digits-2"):
        assert statuses[name]["message"] == "reused the result of digits-0 (same candidate)"
        assert statuses[name]["metrics"] == statuses["digits-0"]["metrics"]


def test_warm_start_from_an_earlier_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first = kubenas("run", str(manifest(tmp_path, max_trials=2, epochs=2)), "--output", str(runs))
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out

    doc = yaml.safe_load((tmp_path / "exp.yaml").read_text())
    doc["metadata"]["name"] = "again"
    doc["spec"]["strategy"] = {
        "name": "evolution",
        "seed": 1,
        "warmStartFrom": "digits",
        "settings": {"populationSize": 2, "sampleSize": 2},
    }
    doc["spec"]["budget"] = {"maxTrials": 1, "parallelTrials": 1}
    path = tmp_path / "again.yaml"
    path.write_text(yaml.safe_dump(doc))
    second = kubenas("run", str(path), "--output", str(runs))
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 0, out

    from kubenas.api.manifest import load_manifest
    from kubenas.engine.reuse import warm_start
    from kubenas.local.runner import warm_trials
    from kubenas.strategies import make_strategy

    spec = load_manifest(path).spec
    expected = make_strategy(spec).ask(warm_start("digits", warm_trials(runs, "digits")), 1)[0]
    trial = json.loads((runs / "again" / "trials" / "again-0" / "trial.json").read_text())
    assert trial["candidate"] == expected.to_dict()

    missing = tmp_path / "missing.yaml"
    doc["spec"]["strategy"]["warmStartFrom"] = "ghost"
    missing.write_text(yaml.safe_dump(doc))
    third = kubenas("run", str(missing), "--output", str(runs))
    out, _ = third.communicate(timeout=60)
    assert third.returncode == 2 and "spec.strategy.warmStartFrom: no run of experiment 'ghost'" in out


def test_median_rule_stops_trials_that_fall_behind(tmp_path: Path) -> None:
    from kubenas.api.manifest import load_manifest
    from kubenas.strategies import make_strategy

    doc = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())
    doc["spec"]["searchSpace"] = {
        "layers": {"count": {"values": [1]}, "units": {"values": [32]}, "activations": ["relu"]},
        "hyperparameters": {
            "learningRate": {"values": [0.00001, 0.01]},
            "optimizers": ["adam"],
            "batchSize": {"values": [64]},
        },
    }
    doc["spec"]["budget"] = {"maxTrials": 4, "parallelTrials": 1}
    doc["spec"]["training"]["epochs"] = 15
    doc["spec"]["objective"] = {"metric": "accuracy"}
    doc["spec"]["earlyStopping"] = {"rule": "median", "graceEpochs": 1, "minTrials": 1}
    path = tmp_path / "exp.yaml"
    for seed in range(50):  # a seed whose first trial learns and a later one does not
        doc["spec"]["strategy"] = {"name": "random", "seed": seed}
        path.write_text(yaml.safe_dump(doc))
        rates = [c.hyperparameters.learning_rate for c in make_strategy(load_manifest(path).spec).ask([], 4)]
        if rates[0] == 0.01 and 0.00001 in rates[1:]:
            break
    proc = kubenas("run", str(path), "--output", str(tmp_path / "runs"))
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    trials_dir = tmp_path / "runs" / "digits" / "trials"
    for index, rate in enumerate(rates):
        status = json.loads((trials_dir / f"digits-{index}" / "status.json").read_text())
        if rate == 0.01:
            assert status["phase"] == "Succeeded", status
        else:
            assert status["phase"] == "Stopped", status
            assert status["message"].startswith("early stopping: best"), status
            assert status["epochs"] < 15


def test_asha_pauses_trials_at_rungs_and_promotes_the_best_from_their_checkpoints(tmp_path: Path) -> None:
    doc = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())
    doc["spec"]["budget"] = {"maxTrials": 6, "parallelTrials": 2}
    doc["spec"]["training"]["epochs"] = 9
    doc["spec"]["objective"] = {"metric": "accuracy"}
    doc["spec"]["strategy"] = {"name": "tpe", "seed": 3, "settings": {"nStartupTrials": 3}}
    doc["spec"]["earlyStopping"] = {"rule": "asha", "minEpochs": 1, "reductionFactor": 3}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(doc))
    proc = kubenas("run", str(path), "--output", str(tmp_path / "runs"))
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    run_dir = tmp_path / "runs" / "digits"
    status = json.loads((run_dir / "status.json").read_text())
    trials = {p.parent.name: json.loads(p.read_text()) for p in run_dir.glob("trials/*/status.json")}
    assert status["phase"] == "Succeeded" and len(trials) == 6
    epochs = {name: t["epochs"] for name, t in trials.items()}
    full = [name for name, e in epochs.items() if e == 9]
    assert full and all(trials[n]["phase"] == "Succeeded" for n in full)
    assert status["best"]["trial"] in full
    # The others stopped at a rung (1 or 3), paused when the experiment ended.
    assert all(e in (1, 3) for n, e in epochs.items() if n not in full), epochs
    assert all(trials[n]["phase"] == "Stopped" for n in trials if n not in full)
    assert sum(epochs.values()) < 6 * 9 / 2  # at most half the epochs of training every trial fully
    for name in full:  # promoted twice, resumed from its checkpoint each time: one unbroken curve
        curve = (run_dir / "trials" / name / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["epoch"] for line in curve] == list(range(1, 10))
        assert f"{name} promoted: continues after epoch 1 to epoch 3" in out
        assert f"{name} promoted: continues after epoch 3 to epoch 9" in out
        log = (run_dir / "trials" / name / "trainer.log").read_text()
        checkpoint = run_dir / "trials" / name / "checkpoint.pt"
        assert f"resumed from {checkpoint} after epoch 1\n" in log
        assert f"resumed from {checkpoint} after epoch 3\n" in log
    # Every segment ran in one of two reused worker processes (parallelTrials), not one process each.
    started = (run_dir / "workers.log").read_text().count("kubenas-trainer worker")
    assert 1 <= started <= 2 < len(trials) + 2 * len(full), started
