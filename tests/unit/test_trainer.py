"""The trainer: builds the candidate, trains on digits, reports in result.json and the termination log."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kubenas_trainer.spec import (
    Architecture,
    Candidate,
    Hyperparameters,
    Layer,
    Training,
    TrialResult,
    TrialSpec,
)

MLP = Candidate(
    architecture=Architecture(layers=[Layer(type="dense", units=128, activation="relu", dropout=0.1)]),
    hyperparameters=Hyperparameters(learning_rate=0.003, optimizer="adam", batch_size=64),
)


def run_trainer(tmp_path: Path, spec_json: str) -> tuple[int, TrialResult, str]:
    log = tmp_path / "termination-log"
    env = {
        **os.environ,
        "KUBENAS_TRIAL_SPEC": spec_json,
        "KUBENAS_TERMINATION_LOG": str(log),
        "KUBENAS_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "kubenas_trainer", "--output", str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    result = TrialResult.model_validate_json((tmp_path / "out" / "result.json").read_text())
    return proc.returncode, result, log.read_text() if log.exists() else ""


@pytest.mark.slow
def test_mlp_learns_digits_and_reports_everywhere(tmp_path: Path) -> None:
    spec = TrialSpec(name="t-0", candidate=MLP, training=Training(epochs=10), seed=1)
    code, result, termination = run_trainer(tmp_path, spec.model_dump_json(by_alias=True))
    assert code == 0, result.message
    assert result.phase == "Succeeded" and result.epochs == 10
    assert result.metrics["accuracy"] >= 0.95
    assert 0.9 <= result.metrics["f1"] <= 1.0 and result.metrics["loss"] < 0.3
    assert result.metrics["trainingSeconds"] > 0
    assert TrialResult.model_validate_json(termination) == result
    epochs = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == list(range(1, 11))


@pytest.mark.slow
def test_same_seed_same_metrics(tmp_path: Path) -> None:
    from kubenas_trainer.train import train

    spec = TrialSpec(name="t", candidate=MLP, training=Training(epochs=2), seed=5)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = train(spec, tmp_path / "a"), train(spec, tmp_path / "b")
    assert a.metrics["accuracy"] == b.metrics["accuracy"] and a.metrics["loss"] == b.metrics["loss"]


def test_unusable_spec_reports_failure_with_reason(tmp_path: Path) -> None:
    code, result, termination = run_trainer(tmp_path, json.dumps({"name": "t", "candidate": {}}))
    assert code == 2 and result.phase == "Failed"
    assert "invalid trial spec" in result.message and "candidate.architecture" in result.message
    assert json.loads(termination)["phase"] == "Failed"


def test_diverging_training_fails_the_trial_not_the_process(tmp_path: Path) -> None:
    wild = MLP.model_copy(
        update={"hyperparameters": Hyperparameters(learning_rate=10.0, optimizer="sgd", batch_size=8)}
    )
    spec = TrialSpec(name="t", candidate=wild, training=Training(dataset="diabetes", epochs=3), seed=1)
    code, result, _ = run_trainer(tmp_path, spec.model_dump_json(by_alias=True))
    assert code == 1 and result.phase == "Failed" and "FloatingPointError" in result.message
