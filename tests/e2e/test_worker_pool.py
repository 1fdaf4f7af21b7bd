"""The local runner's worker pool with real trainer processes: trials reuse a worker, a trial runs in a
worker exactly as in a fresh process, a stop checkpoints and keeps the worker, a crash is contained."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubenas.api import NASExperimentSpec
from kubenas.local.backend import LocalBackend
from kubenas.local.console import Console
from kubenas.local.launcher import Exit
from kubenas.local.store import RunStore
from kubenas.local.workers import WorkerPool
from kubenas_trainer.spec import Architecture, Candidate, Hyperparameters, Layer, Training, TrialSpec

pytestmark = pytest.mark.slow


def spec(name: str, seed: int, epochs: int = 2) -> TrialSpec:
    layers = [Layer(type="dense", units=32, activation="relu", dropout=0.1)]
    hp = Hyperparameters(learning_rate=0.003, optimizer="adam", batch_size=64)
    candidate = Candidate(architecture=Architecture(layers=layers), hyperparameters=hp)
    training = Training(dataset="digits", epochs=epochs, test_fraction=0.2)
    return TrialSpec(name=name, candidate=candidate, training=training, seed=seed)


def wait(pool: WorkerPool, timeout: float = 300) -> list[Exit]:
    """Poll until nothing runs; the exits seen."""
    exits: list[Exit] = []
    deadline = time.monotonic() + timeout
    while pool.running and time.monotonic() < deadline:
        exits += pool.poll()
        time.sleep(0.05)
    assert not pool.running, "trials still running"
    return exits


def wait_for(path: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.exists(), path


def result(workdir: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((workdir / "result.json").read_text())
    return loaded


@pytest.fixture
def pool(tmp_path: Path):  # type: ignore[no-untyped-def]
    made = WorkerPool(1, gpus=[], log=tmp_path / "workers.log")
    yield made
    made.stop_all()


def test_trials_reuse_one_worker_and_train_as_a_fresh_process_would(pool: WorkerPool, tmp_path: Path) -> None:
    for i in range(3):  # one slot: one after another
        workdir = tmp_path / f"t-{i}"
        workdir.mkdir()
        pool.launch(spec(f"t-{i}", seed=i), workdir)
        assert [(e.name, e.returncode) for e in wait(pool)] == [(f"t-{i}", 0)]
        assert result(workdir)["phase"] == "Succeeded"
        assert (workdir / "model.pt2").is_file()
    assert pool.started == 1

    # The last trial again, alone in a fresh trainer process: the same curve to the last digit.
    fresh = tmp_path / "fresh"
    subprocess.run(
        [sys.executable, "-m", "kubenas_trainer", "--output", str(fresh)],
        env={
            **os.environ,
            "KUBENAS_TRIAL_SPEC": spec("t-2", seed=2).model_dump_json(by_alias=True, exclude_none=True),
            "KUBENAS_NUM_THREADS": str(pool.threads),
            "PYTHONPATH": os.pathsep.join(sys.path),
        },
        check=True,
        capture_output=True,
    )
    assert result(fresh)["curve"] == result(tmp_path / "t-2")["curve"]
    assert result(fresh)["testMetrics"] == result(tmp_path / "t-2")["testMetrics"]


def test_a_stop_checkpoints_the_trial_and_keeps_the_worker(pool: WorkerPool, tmp_path: Path) -> None:
    workdir = tmp_path / "long"
    workdir.mkdir()
    pool.launch(spec("long", seed=1, epochs=500), workdir)
    wait_for(workdir / "metrics.jsonl")
    pool.stop("long")
    assert pool.running == set() and pool.poll() == []  # a stopped segment is not reported
    stopped = result(workdir)
    assert stopped["phase"] == "Failed" and stopped["reason"] == "Interrupted"
    assert (workdir / "checkpoint.pt").is_file()

    # Resumed later in the same worker, from its checkpoint (as a paused ASHA trial is promoted).
    (workdir / "result.json").unlink()
    pool.launch(spec("long", seed=1, epochs=2), workdir)
    assert [e.returncode for e in wait(pool)] == [0]
    assert "resumed from" in (workdir / "trainer.log").read_text()
    assert pool.started == 1


def test_a_worker_that_dies_fails_its_trial_and_is_replaced(pool: WorkerPool, tmp_path: Path) -> None:
    spec_ = NASExperimentSpec.model_validate({"training": {"epochs": 2}})
    store = RunStore(tmp_path / "exp")
    backend = LocalBackend(store, pool, Console("accuracy", 2, out=io.StringIO()), spec_, "exp")
    workdir = store.trial_dir("doomed")
    workdir.mkdir(parents=True)
    pool.launch(spec("doomed", seed=1, epochs=500), workdir)
    wait_for(workdir / "metrics.jsonl")
    (busy,) = pool._running.values()  # the test reaches in for the worker's pid, to kill it
    os.kill(busy.worker.process.pid, signal.SIGKILL)  # as the OOM killer would
    (exit_,) = wait(pool)
    assert exit_.name == "doomed" and exit_.returncode == -signal.SIGKILL
    failed = backend._result(exit_)
    assert failed.phase == "Failed"
    assert failed.message.startswith("trainer was killed by SIGKILL without a result"), failed.message

    workdir = tmp_path / "next"
    workdir.mkdir()
    pool.launch(spec("next", seed=2), workdir)
    assert [e.returncode for e in wait(pool)] == [0]
    assert pool.started == 2
