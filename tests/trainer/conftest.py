"""Shared helpers of the trainer tests: candidates, specs, and running kubenas-trainer as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubenas_trainer.spec import Architecture, Candidate, Hyperparameters, Layer, Training, TrialSpec

# The fixtures' types, repeated in the test modules (conftest is not importable under importlib mode).

MakeSpec = Callable[..., TrialSpec]
RunTrainer = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def make_spec() -> MakeSpec:
    def make(
        layers: list[Layer], dataset: str = "digits", epochs: int = 3, seed: int = 1, **options: Any
    ) -> TrialSpec:
        hp = {"learningRate": 0.003, "optimizer": "adam", "batchSize": 64}
        training = {"dataset": dataset, "epochs": epochs, "testFraction": 0.2}
        training_keys = {field.alias for field in Training.model_fields.values()}
        for key, value in options.items():
            (training if key in training_keys else hp)[key] = value
        candidate = Candidate(
            architecture=Architecture(layers=layers), hyperparameters=Hyperparameters.model_validate(hp)
        )
        return TrialSpec(name="t", candidate=candidate, training=Training.model_validate(training), seed=seed)

    return make


def _trainer_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "KUBENAS_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path), **extra}


@pytest.fixture
def trainer_env() -> Callable[..., dict[str, str]]:
    """The environment of a trainer subprocess: one thread, this checkout's code."""
    return _trainer_env


@pytest.fixture
def run_trainer(tmp_path: Path) -> RunTrainer:
    """kubenas-trainer in a subprocess: spec JSON in, OUTPUT under tmp_path/out."""

    def run(spec: TrialSpec, *args: str, output: Path | None = None) -> subprocess.CompletedProcess[str]:
        out = output or tmp_path / "out"
        env = _trainer_env(
            KUBENAS_TRIAL_SPEC=spec.model_dump_json(by_alias=True, exclude_none=True),
            KUBENAS_TERMINATION_LOG=str(tmp_path / "termination-log"),
        )
        return subprocess.run(
            [sys.executable, "-m", "kubenas_trainer", "--output", str(out), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    return run
