"""Shared helpers of the trainer tests: candidates, specs, and running kubenas-trainer as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubenas_trainer.__main__ import main
from kubenas_trainer.spec import (
    Architecture,
    Candidate,
    Hyperparameters,
    Layer,
    Training,
    TrialResult,
    TrialSpec,
)

from tests.services.pushgateway import Pushgateway
from tests.services.s3 import S3Server
from tests.services.trainer_endpoints import Bucket

# The fixtures' types, repeated in the test modules (conftest is not importable under importlib mode).

MakeSpec = Callable[..., TrialSpec]
RunTrainer = Callable[..., subprocess.CompletedProcess[str]]
RunMain = Callable[..., tuple[int, TrialResult]]


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
    """kubenas-trainer in a subprocess: spec JSON in, OUTPUT under tmp_path/out, `env` added."""

    def run(
        spec: TrialSpec, *args: str, output: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        out = output or tmp_path / "out"
        environment = _trainer_env(
            KUBENAS_TRIAL_SPEC=spec.model_dump_json(by_alias=True, exclude_none=True),
            KUBENAS_TERMINATION_LOG=str(tmp_path / "termination-log"),
            **(env or {}),
        )
        return subprocess.run(
            [sys.executable, "-m", "kubenas_trainer", "--output", str(out), *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
        )

    return run


@pytest.fixture
def run_main(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunMain:
    """kubenas-trainer's main() in this process (no imports to wait for): its exit status and result."""

    def run(
        spec: TrialSpec, *args: str, output: Path | None = None, env: dict[str, str] | None = None
    ) -> tuple[int, TrialResult]:
        out = output or tmp_path / "out"
        variables = {
            "KUBENAS_TRIAL_SPEC": spec.model_dump_json(by_alias=True, exclude_none=True),
            "KUBENAS_TERMINATION_LOG": str(tmp_path / "termination-log"),
            **(env or {}),
        }
        with monkeypatch.context() as patch:
            for name, value in variables.items():
                patch.setenv(name, value)
            status = main(["--output", str(out), *args])
        return status, TrialResult.model_validate_json((out / "result.json").read_text())

    return run


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """An S3-compatible server on loopback; this process's boto3 environment points at it (trainer
    subprocesses take `s3.env`)."""
    with S3Server() as server:
        for name, value in server.env.items():
            monkeypatch.setenv(name, value)
        yield server


@pytest.fixture
def bucket(s3: S3Server) -> Bucket:
    return Bucket(s3)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Pushgateway]:
    with Pushgateway(tmp_path / "pushgateway") as server:
        yield server
