"""Why a trial failed, from real trainer runs: TrialResult.reason and the exit status. A spec that cannot
run on a built-in set, or whose data is not there, fails before torch is imported."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from kubenas_trainer.__main__ import main
from kubenas_trainer.data import load_split
from kubenas_trainer.spec import FailureReason, Layer, ObjectiveRef, TrialResult, TrialSpec

from tests.services.s3 import S3Server

MakeSpec = Callable[..., TrialSpec]
RunTrainer = Callable[..., subprocess.CompletedProcess[str]]
RunMain = Callable[..., tuple[int, TrialResult]]


def layer(kind: str, units: int = 8, **fields: object) -> Layer:
    return Layer.model_validate({"type": kind, "units": units, "activation": "relu", **fields})


@pytest.fixture
def no_torch(tmp_path: Path) -> dict[str, str]:
    """A trainer environment in which importing torch fails: what runs there needs no torch."""
    blocker = tmp_path / "no-torch" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch imported before the spec was checked')\n")
    return {"PYTHONPATH": os.pathsep.join([str(blocker.parent), *sys.path])}


def outcome(proc: subprocess.CompletedProcess[str], tmp_path: Path) -> TrialResult:
    result = TrialResult.model_validate_json((tmp_path / "out" / "result.json").read_text())
    reported = json.loads((tmp_path / "termination-log").read_text())
    assert reported["reason"] == result.reason, proc.stderr[-2000:]
    assert "torch imported" not in result.message
    return result


def test_a_candidate_that_cannot_take_its_data_is_an_invalid_candidate(
    make_spec: MakeSpec, run_trainer: RunTrainer, no_torch: dict[str, str], tmp_path: Path
) -> None:
    proc = run_trainer(make_spec([layer("conv2d")], "iris"), env=no_torch)
    result = outcome(proc, tmp_path)
    assert (proc.returncode, result.phase, result.reason) == (2, "Failed", "InvalidCandidate")
    assert result.message.startswith("invalid trial spec: architecture.layers[0] (conv2d): needs an image")


def test_an_objective_the_task_does_not_report_is_an_invalid_spec(
    make_spec: MakeSpec, run_trainer: RunTrainer, no_torch: dict[str, str], tmp_path: Path
) -> None:
    spec = make_spec([layer("dense")], "digits")
    spec = spec.model_copy(update={"objective": ObjectiveRef(metric="r2", direction="maximize")})
    proc = run_trainer(spec, env=no_torch)
    result = outcome(proc, tmp_path)
    assert (proc.returncode, result.reason) == (2, "InvalidSpec")
    assert "objective.metric: r2 is not reported for classification data set 'digits'" in result.message


def test_a_missing_file_is_data_unavailable(
    make_spec: MakeSpec, run_trainer: RunTrainer, no_torch: dict[str, str], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "data.npz"
    proc = run_trainer(make_spec([layer("conv2d")], str(missing)), env=no_torch)
    result = outcome(proc, tmp_path)
    assert (proc.returncode, result.reason) == (2, "DataUnavailable")
    assert result.message == f"training.dataset: {missing} does not exist"


@pytest.fixture
def stored_data(s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An s3:// data set on the S3 server, then a process environment with no AWS_* variables."""
    client = s3.client()
    client.create_bucket(Bucket="data")
    buffer = io.BytesIO()
    np.savez(buffer, x=np.ones((20, 3), np.float32), y=np.arange(20) % 2)
    client.put_object(Bucket="data", Key="sets/t.npz", Body=buffer.getvalue())
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    yield "s3://data/sets/t.npz"


def s3_env(s3: S3Server, tmp_path: Path, **credentials: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "KUBENAS_DATA_CACHE": str(tmp_path / "cache"),
        **credentials,
    }


def test_an_s3_data_set_without_credentials_is_data_unavailable(
    make_spec: MakeSpec,
    run_trainer: RunTrainer,
    no_torch: dict[str, str],
    s3: S3Server,
    stored_data: str,
    tmp_path: Path,
) -> None:
    proc = run_trainer(make_spec([layer("dense")], stored_data), env=no_torch | s3_env(s3, tmp_path))
    result = outcome(proc, tmp_path)
    assert (proc.returncode, result.reason) == (2, "DataUnavailable")
    assert result.message == (
        f"training.dataset: {stored_data}: no credentials (set AWS_ACCESS_KEY_ID "
        "and AWS_SECRET_ACCESS_KEY, or the storage Secret)"
    )


@pytest.fixture
def authenticating(s3: S3Server) -> Iterator[None]:
    """The S3 server checks credentials (moto accepts any unless told)."""

    def set_count(value: str) -> None:
        url, plain = f"{s3.endpoint}/moto-api/reset-auth", {"Content-Type": "text/plain"}
        request = urllib.request.Request(url, value.encode(), plain, method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    set_count("0")
    yield
    set_count("inf")


def test_an_s3_data_set_with_wrong_credentials_is_data_unavailable(
    make_spec: MakeSpec,
    run_trainer: RunTrainer,
    no_torch: dict[str, str],
    s3: S3Server,
    stored_data: str,
    authenticating: None,
    tmp_path: Path,
) -> None:
    wrong = s3_env(s3, tmp_path, AWS_ACCESS_KEY_ID="nobody", AWS_SECRET_ACCESS_KEY="wrong")
    proc = run_trainer(make_spec([layer("dense")], stored_data), env=no_torch | wrong)
    result = outcome(proc, tmp_path)
    assert (proc.returncode, result.reason) == (2, "DataUnavailable")
    denied = "access denied (HTTP 403): the credentials in the environment may not read it"  # HEAD: no code
    assert result.message == f"training.dataset: {stored_data}: {denied}"


def test_a_diverging_trial_is_a_training_failure(
    make_spec: MakeSpec, run_trainer: RunTrainer, tmp_path: Path
) -> None:
    spec = make_spec([layer("dense", 64)], "diabetes", learningRate=10.0, optimizer="sgd", batchSize=32)
    proc = run_trainer(spec)
    result = outcome(proc, tmp_path)
    assert (proc.returncode, result.phase, result.reason) == (1, "Failed", "TrainingFailed")
    assert result.message.startswith("FloatingPointError: validation loss is nan at epoch 1")


def test_a_file_is_checked_against_the_candidate_once_read(
    make_spec: MakeSpec, run_main: RunMain, tmp_path: Path
) -> None:
    """A file's sample shape is known only once it is read: the same rules, before any model exists."""
    data = tmp_path / "features.npz"
    np.savez(data, x=np.ones((30, 5), np.float32), y=np.arange(30) % 3)
    status, result = run_main(make_spec([layer("dense"), layer("lstm")], str(data)))
    assert (status, result.reason) == (2, FailureReason.INVALID_CANDIDATE)
    assert "architecture.layers[1] (lstm): needs a sequence" in result.message
    status, result = run_main(make_spec([layer("dense", normalization="batch")], str(data), batchSize=1))
    assert (status, result.reason) == (2, FailureReason.INVALID_CANDIDATE)
    assert "normalization batch needs more than one value per channel" in result.message
    assert not (tmp_path / "out" / "metrics.jsonl").exists()


def test_a_last_batch_of_one_sample_trains_with_batch_normalisation(
    make_spec: MakeSpec, run_main: RunMain, tmp_path: Path
) -> None:
    """It used to fail at the epoch's last step ("Expected more than 1 value per channel")."""
    data = tmp_path / "features.npz"
    np.savez(data, x=np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32), y=np.arange(50) % 2)
    spec = make_spec([layer("dense", normalization="batch")], str(data), epochs=1)
    samples = len(load_split(spec.training).x_train)
    hp = spec.candidate.hyperparameters.model_copy(update={"batch_size": samples - 1})
    spec = spec.model_copy(update={"candidate": spec.candidate.model_copy(update={"hyperparameters": hp})})
    status, result = run_main(spec)  # one batch of all but one sample, and one of a single sample
    assert (status, result.phase, result.reason) == (0, "Succeeded", None), result.message


def test_an_unreadable_trial_spec_is_an_invalid_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBENAS_TRIAL_SPEC", '{"name": "t", "candidate": {}}')
    monkeypatch.setenv("KUBENAS_TERMINATION_LOG", str(tmp_path / "termination-log"))
    assert main(["--output", str(tmp_path / "out")]) == 2
    result = TrialResult.model_validate_json((tmp_path / "out" / "result.json").read_text())
    assert (result.phase, result.reason) == ("Failed", "InvalidSpec")
    assert result.message.startswith("invalid trial spec: ")
