"""The run directory in object storage (moto's S3 server on loopback): the uploads and their order,
continuing a stored checkpoint (a preempted pod, another trial's start), and storage outages."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from kubenas_trainer.background import Latest
from kubenas_trainer.spec import ArtifactStore, Layer, TrialResult, TrialSpec
from kubenas_trainer.train import train
from kubenas_trainer.uploader import Uploader
from pydantic import ValidationError

from tests.services.trainer_endpoints import Bucket

MakeSpec = Callable[..., TrialSpec]
RunTrainer = Callable[..., subprocess.CompletedProcess[str]]
RunMain = Callable[..., tuple[int, TrialResult]]
Env = Callable[..., dict[str, str]]
DENSE = Layer.model_validate({"type": "dense", "units": 8, "activation": "relu"})
RUN_DIRECTORY = {
    "result.json",
    "metrics.jsonl",
    "model.pt2",
    "model.pt",
    "architecture.json",
    "checkpoint.pt",
}
FAST_RETRIES = {"KUBENAS_STORAGE_BACKOFF_SECONDS": "0.1"}


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def stored(spec: TrialSpec, bucket: Bucket) -> dict[str, dict[str, Any]]:
    assert spec.storage is not None
    return bucket.objects(spec.storage.uri.removeprefix(f"s3://{bucket.name}/"))


def rows(run_dir: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def with_storage(spec: TrialSpec, bucket: Bucket, trial: str, **update: object) -> TrialSpec:
    store = ArtifactStore(uri=bucket.uri(f"kubenas/ns/e/{trial}"))
    return spec.model_copy(update={"storage": store, **update})


def test_the_store_is_an_s3_prefix_and_the_result_names_it() -> None:
    assert ArtifactStore(uri="s3://b/kubenas/ns/e/t").uri == "s3://b/kubenas/ns/e/t/"
    for bad in ("/data/runs/", "s3:///prefix/", "gs://b/p/"):
        with pytest.raises(ValidationError, match="is not an s3://bucket/prefix/ URI"):
            ArtifactStore(uri=bad)
    result = TrialResult(name="t", phase="Succeeded", message="x" * 5000, artifacts="s3://b/kubenas/ns/e/t/")
    message = result.to_termination_message()
    assert len(message.encode()) <= 4096 and json.loads(message)["artifacts"] == "s3://b/kubenas/ns/e/t/"


def test_the_background_thread_handles_the_first_and_then_only_the_newest_state() -> None:
    handled, released, interrupted = list[int](), list[int](), list[bool]()
    busy, go = threading.Event(), threading.Event()

    def handle(state: int, interrupt: threading.Event) -> None:
        handled.append(state)
        if state == 1:  # slow: states 2, 3 and 4 arrive meanwhile
            busy.set()
            go.wait(10)
            interrupted.append(interrupt.is_set())

    worker = Latest("test", handle, released.append)
    worker.submit(1)
    assert busy.wait(10)
    for state in (2, 3, 4):
        worker.submit(state)
    go.set()
    worker.close(handle_waiting=True, timeout=10)
    assert handled == [1, 4] and interrupted == [True]  # a newer state waiting interrupts the running one
    assert sorted(released) == [1, 2, 3, 4]  # every state let go: dropped or handled
    with pytest.raises(RuntimeError, match="closed"):
        worker.submit(5)


class Recorder:
    """An S3 client that records the keys it wrote or deleted, in order."""

    def __init__(self, client: Any) -> None:
        self.client, self.calls = client, list[tuple[str, str]]()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            answer = method(*args, **kwargs)
            key = kwargs.get("Key") or (args[2] if len(args) > 2 else None)
            self.calls.append((name, str(key).rsplit("/t/", 1)[-1]))
            return answer

        return call


def test_uploads_skip_temporary_and_unchanged_files_and_end_with_the_result(
    bucket: Bucket, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    (run / "tensorboard").mkdir(parents=True)
    for name, size in [
        ("checkpoint.pt", 3000),
        ("metrics.jsonl", 50),
        ("model.pt", 700),
        ("tensorboard/ev", 9),
    ]:
        (run / name).write_bytes(b"x" * size)
    (run / "checkpoint.pt.part").write_bytes(b"half")
    (run / ".fetch-1.pt").write_bytes(b"downloading")
    store = ArtifactStore(uri=bucket.uri("kubenas/ns/e/t/"))
    bucket.server.client().put_object(Bucket=bucket.name, Key="kubenas/ns/e/t/result.json", Body=b"stale")

    uploader = Uploader(store, run)
    recorder = Recorder(uploader.s3.client)
    uploader.s3.client = recorder
    uploader.started(None)
    uploader.saved(None)  # the background thread: delete the stale result, then checkpoint and metrics
    wait_for(lambda: len(recorder.calls) == 3)
    (run / "model.pt").write_bytes(b"y" * 800)
    result = TrialResult(name="t", phase="Succeeded", metrics={"accuracy": 0.5})
    written = []

    def write(final: TrialResult) -> None:
        written.append(final)
        (run / "result.json").write_text(final.model_dump_json(by_alias=True))

    final = uploader.finish(result, write)
    assert recorder.calls == [
        ("delete_object", "result.json"),
        ("upload_fileobj", "checkpoint.pt"),
        ("upload_fileobj", "metrics.jsonl"),
        ("upload_file", "model.pt"),  # unchanged checkpoint.pt and metrics.jsonl are not sent again
        ("upload_file", "tensorboard/ev"),
        ("upload_file", "result.json"),
    ]
    objects = bucket.objects("kubenas/ns/e/t/")
    assert set(objects) == {"checkpoint.pt", "metrics.jsonl", "model.pt", "tensorboard/ev", "result.json"}
    assert final.artifacts == store.uri and written == [final]
    assert final.metrics == {"accuracy": 0.5, "uploadedBytes": 3000 + 50 + 800 + 9}
    assert TrialResult.model_validate_json(bucket.read("kubenas/ns/e/t/result.json")) == final


def test_a_trial_uploads_its_run_directory_with_the_result_last(
    make_spec: MakeSpec, run_trainer: RunTrainer, bucket: Bucket, tmp_path: Path
) -> None:
    spec = with_storage(make_spec([DENSE], "iris", epochs=3), bucket, "whole")
    proc = run_trainer(spec, env=bucket.server.env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "out"
    result = TrialResult.model_validate_json((out / "result.json").read_text())
    assert spec.storage is not None and result.artifacts == spec.storage.uri and result.phase == "Succeeded"
    objects = stored(spec, bucket)
    events = [name for name in objects if name.startswith("tensorboard/")]
    assert set(objects) == RUN_DIRECTORY | set(events) and len(events) == 1
    for name in objects:
        prefix = spec.storage.uri.removeprefix(f"s3://{bucket.name}/")
        assert bucket.read(prefix + name) == (out / name).read_bytes(), name
    last = max(item["LastModified"] for name, item in objects.items() if name != "result.json")
    assert objects["result.json"]["LastModified"] >= last
    sizes = {name: item["Size"] for name, item in objects.items()}
    assert result.metrics["uploadedBytes"] == sum(sizes.values()) - sizes["result.json"]
    line = re.search(r"uploaded (\d+) files, (\d+) bytes to (\S+)", proc.stderr)
    assert line is not None and line.groups() == (
        str(len(objects)),
        str(sum(sizes.values())),
        spec.storage.uri,
    )
    termination = TrialResult.model_validate_json((tmp_path / "termination-log").read_text())
    assert termination == result


def test_a_paused_trial_in_storage_goes_on_as_another_trials_start_and_in_an_empty_directory(
    make_spec: MakeSpec,
    run_trainer: RunTrainer,
    run_main: RunMain,
    bucket: Bucket,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = with_storage(make_spec([DENSE], "iris", epochs=4), bucket, "parent")
    assert spec.storage is not None
    first, second = tmp_path / "first", tmp_path / "second"
    paused = run_trainer(
        spec.model_copy(update={"stop_at_epoch": 2}), "--resume", output=first, env=bucket.server.env
    )
    assert paused.returncode == 0, paused.stderr[-2000:]  # --resume with nothing stored: from scratch
    assert "checkpoint.pt" in stored(spec, bucket) and [row["epoch"] for row in rows(first)] == [1, 2]
    checkpoint = f"{spec.storage.uri}checkpoint.pt"

    # (b) another trial starts from the stored checkpoint, with its own hyperparameters
    child = make_spec([DENSE], "iris", epochs=4, learningRate=0.001)
    child_dir = tmp_path / "child"
    child_dir.mkdir()
    started = train(child.model_copy(update={"start_from": checkpoint}), child_dir)
    assert started.epochs == 4 and rows(child_dir)[:2] == rows(first)
    assert [row["learningRate"] for row in rows(child_dir)[2:]] == [pytest.approx(0.001)] * 2
    assert not [p for p in child_dir.iterdir() if p.name.startswith(".fetch")]  # the download is gone
    with pytest.raises(FileNotFoundError, match=f"startFrom: no checkpoint at {spec.storage.uri}nothing.pt"):
        train(child.model_copy(update={"start_from": f"{spec.storage.uri}nothing.pt"}), child_dir)

    # (a) preempted: its pod starts again on another node, with an empty output directory
    capsys.readouterr()
    status, result = run_main(spec, "--resume", output=second)
    assert status == 0 and result.phase == "Succeeded" and result.epochs == 4
    assert f"fetched {checkpoint}" in capsys.readouterr().out
    assert rows(second)[:2] == rows(first)  # to the last digit of epochSeconds: not trained again
    assert [row["epoch"] for row in rows(second)] == [1, 2, 3, 4]
    assert rows(second)[2] != rows(child_dir)[2]  # its own learning rate, not the child's
    assert not [p.name for p in second.iterdir() if p.name.startswith(".")]  # no download left behind
    assert TrialResult.model_validate_json(bucket.read("kubenas/ns/e/parent/result.json")) == result


class Trainer:
    """kubenas-trainer in the background, its stderr in a file (read while it runs)."""

    def __init__(self, spec: TrialSpec, out: Path, env: dict[str, str], *args: str) -> None:
        self.out, self.log = out, out.with_name(out.name + ".stderr")
        environment = {**env, "KUBENAS_TRIAL_SPEC": spec.model_dump_json(by_alias=True, exclude_none=True)}
        command = [sys.executable, "-m", "kubenas_trainer", "--output", str(out), *args]
        with self.log.open("w") as stderr:
            self.process = subprocess.Popen(
                command, env=environment, stdout=subprocess.PIPE, stderr=stderr, text=True
            )

    def epochs(self) -> int:
        metrics = self.out / "metrics.jsonl"
        return metrics.read_text().count("\n") if metrics.exists() else 0

    def wait(self) -> tuple[int, str, str]:
        """Exit status, stdout, stderr."""
        try:
            stdout, _ = self.process.communicate(timeout=300)
        finally:
            self.process.kill()
        return self.process.returncode, stdout, self.log.read_text()


def outage(spec: TrialSpec, bucket: Bucket, env: dict[str, str], seconds: float, out: Path) -> str:
    """Run spec with the S3 server stopped from its first epoch until `seconds` later or the end of
    training, whichever comes last; check that everything arrived; its stderr."""
    trainer = Trainer(spec, out, {**env, **bucket.server.env})
    wait_for(lambda: trainer.epochs() >= 1)
    bucket.server.stop()
    down = time.monotonic()
    wait_for(lambda: (out / "model.pt2").exists())  # training is over: the final upload waits
    time.sleep(max(0.5, seconds - (time.monotonic() - down)))
    bucket.server.start()
    status, stdout, stderr = trainer.wait()
    assert status == 0, stderr[-2000:]
    assert "failed at attempt 1 (" in stderr and "succeeded at attempt" in stderr
    result = TrialResult.model_validate_json(stdout.splitlines()[-1])
    assert result.phase == "Succeeded" and result.artifacts is not None and result.message == ""
    objects = stored(spec, bucket)
    assert set(objects) >= RUN_DIRECTORY
    prefix = result.artifacts.removeprefix(f"s3://{bucket.name}/")
    assert all(bucket.read(prefix + name) == (out / name).read_bytes() for name in objects)
    return stderr


def test_a_storage_outage_at_the_end_is_waited_out_and_nothing_is_lost(
    make_spec: MakeSpec, trainer_env: Env, bucket: Bucket, tmp_path: Path
) -> None:
    spec = with_storage(make_spec([DENSE], "iris", epochs=3), bucket, "outage")
    env = trainer_env(KUBENAS_STORAGE_DEADLINE_SECONDS="120", **FAST_RETRIES)
    outage(spec, bucket, env, 3, tmp_path / "out")


@pytest.mark.slow
def test_a_minute_of_storage_outage_during_training_and_after_loses_nothing(
    make_spec: MakeSpec, trainer_env: Env, bucket: Bucket, tmp_path: Path
) -> None:
    """The default backoff (0.5 s doubling to 10 s) and deadline (600 s)."""
    spec = with_storage(make_spec([DENSE], "digits", epochs=6, batchSize=8), bucket, "minute")
    stderr = outage(spec, bucket, trainer_env(), 60, tmp_path / "out")
    assert (
        "storage: upload" in stderr and stderr.count(" failed at attempt ") < 20
    )  # compact: not every retry


@pytest.mark.slow
def test_a_preempted_trial_uploads_its_sigterm_checkpoint_and_goes_on_elsewhere(
    make_spec: MakeSpec, trainer_env: Env, run_main: RunMain, bucket: Bucket, tmp_path: Path
) -> None:
    spec = with_storage(make_spec([DENSE], "digits", epochs=6, batchSize=8), bucket, "preempted")
    reference = tmp_path / "reference"
    reference.mkdir()
    expected = train(spec.model_copy(update={"storage": None}), reference)
    trainer = Trainer(spec, tmp_path / "node-a", trainer_env(**bucket.server.env), "--resume")
    wait_for(lambda: trainer.epochs() >= 2)
    trainer.process.send_signal(signal.SIGTERM)
    status, _, stderr = trainer.wait()
    assert status == 143, stderr[-2000:]
    objects = stored(spec, bucket)
    assert spec.storage is not None and {"checkpoint.pt", "result.json"} <= set(objects)
    prefix = spec.storage.uri.removeprefix(f"s3://{bucket.name}/")
    assert bucket.read(prefix + "checkpoint.pt") == (tmp_path / "node-a" / "checkpoint.pt").read_bytes()
    interrupted = TrialResult.model_validate_json(bucket.read(prefix + "result.json"))
    assert interrupted.phase == "Failed" and "interrupted by SIGTERM" in interrupted.message

    status, result = run_main(spec, "--resume", output=tmp_path / "node-b")
    assert status == 0 and result.phase == "Succeeded" and result.artifacts == spec.storage.uri
    assert result.curve == expected.curve and result.test_metrics == expected.test_metrics


def wait_for(condition: Callable[[], bool], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("pause", [True, False], ids=["paused-fails", "succeeded-stays"])
def test_storage_down_past_the_deadline(
    pause: bool, make_spec: MakeSpec, run_trainer: RunTrainer, bucket: Bucket, tmp_path: Path
) -> None:
    spec = with_storage(make_spec([DENSE], "iris", epochs=2), bucket, "down")
    spec = spec.model_copy(update={"stop_at_epoch": 1 if pause else None})
    assert spec.storage is not None
    bucket.server.stop()  # for the whole trial
    proc = run_trainer(
        spec, env={**bucket.server.env, **FAST_RETRIES, "KUBENAS_STORAGE_DEADLINE_SECONDS": "2"}
    )
    result = TrialResult.model_validate_json((tmp_path / "out" / "result.json").read_text())
    assert result.artifacts is None and "uploadedBytes" not in result.metrics
    assert TrialResult.model_validate_json((tmp_path / "termination-log").read_text()) == result
    if pause:  # nobody could continue it
        assert proc.returncode == 1 and (result.phase, result.reason) == ("Failed", "TrainingFailed")
        assert result.message.startswith(
            f"paused after epoch 1 of 2, but its checkpoint was not uploaded to {spec.storage.uri}: "
        )
    else:  # its metrics still reach the operator
        assert proc.returncode == 0 and result.phase == "Succeeded" and result.test_metrics
        assert result.reason is None
        assert result.message.startswith(f"artifacts not uploaded to {spec.storage.uri}: upload s3://")


def test_resume_with_storage_down_fails_rather_than_train_epochs_again(
    make_spec: MakeSpec, run_trainer: RunTrainer, bucket: Bucket, tmp_path: Path
) -> None:
    spec = with_storage(make_spec([DENSE], "iris", epochs=2), bucket, "gone")
    assert spec.storage is not None
    bucket.server.stop()
    env = {**bucket.server.env, **FAST_RETRIES, "KUBENAS_STORAGE_DEADLINE_SECONDS": "1"}
    proc = run_trainer(spec, "--resume", env=env)
    result = TrialResult.model_validate_json((tmp_path / "out" / "result.json").read_text())
    assert proc.returncode == 1 and (result.phase, result.reason) == ("Failed", "TrainingFailed")
    assert result.message.startswith(f"--resume: download {spec.storage.uri}checkpoint.pt: ")
    assert not (tmp_path / "out" / "metrics.jsonl").exists()


def test_an_error_without_an_answer_is_retried_not_mistaken_for_a_missing_object() -> None:
    """A connection that breaks mid-request can raise an error whose `response` is None: it is an outage
    to retry, not an answer (this once failed a trial's --resume during a storage outage)."""
    from botocore.exceptions import ClientError
    from kubenas_trainer.storage import Retry, StorageError

    class Broken(Exception):
        response = None

    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Broken("connection reset")
        return "ok"

    assert Retry.within(30).call("get", flaky) == "ok" and len(calls) == 3
    missing = ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject")
    with pytest.raises(ClientError):  # an answer: raised at once, for the caller to treat as "none"
        Retry.within(30).call("get", lambda: (_ for _ in ()).throw(missing))
    with pytest.raises(StorageError):
        Retry.within(0).call("get", lambda: (_ for _ in ()).throw(Broken("down")))
