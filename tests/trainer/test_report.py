"""Live metrics: the pushed families, a trial's pushes to a real Pushgateway, and a gateway that is down."""

from __future__ import annotations

import json
import math
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from kubenas_trainer import profiling, report
from kubenas_trainer.report import Pusher, registry
from kubenas_trainer.spec import Layer, MetricsReport, TrialResult, TrialSpec
from kubenas_trainer.train import TrainingState, train
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from tests.services.net import free_port
from tests.services.pushgateway import Pushgateway
from tests.services.trainer_endpoints import HangUp

MakeSpec = Callable[..., TrialSpec]
RunTrainer = Callable[..., subprocess.CompletedProcess[str]]
RunMain = Callable[..., tuple[int, TrialResult]]
Sample = tuple[str, dict[str, str], float]
TIMING = {
    "epochSeconds",
    "samplesPerSecond",
    "trainingSeconds",
    "inferenceSecondsPerSample",
    "peakMemoryBytes",
}
DENSE = Layer.model_validate({"type": "dense", "units": 8, "activation": "relu"})


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def rows(run_dir: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def parse(text: str, labels: dict[str, str] | None = None) -> list[Sample]:
    """Samples of the kubenas_trial_* families carrying `labels`, less those labels, job and instance."""
    grouping = labels or {}
    found = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("kubenas_trial") and grouping.items() <= sample.labels.items():
                own = {k: v for k, v in sample.labels.items() if k not in {*grouping, "job", "instance"}}
                found.append((sample.name, own, sample.value))
    return found


def value(samples: list[Sample], name: str, **labels: str) -> float:
    matches = [v for n, own, v in samples if n == name and own == labels]
    assert len(matches) == 1, (name, labels, matches)
    return matches[0]


def test_the_families_hold_every_epoch_the_end_times_known_the_latest_and_the_count() -> None:
    history = [
        {"epoch": 1, "loss": 1.0, "trainLoss": math.nan},
        {"epoch": 2, "loss": 0.5, "trainLoss": math.inf},
    ]
    samples = parse(generate_latest(registry(history, {2: 1_700_000_000.5})).decode())
    names = {name for name, _, _ in samples}
    assert names == {report.TRIAL_METRIC, report.EPOCH_END, report.LATEST, report.EPOCHS}
    assert value(samples, report.TRIAL_METRIC, metric="loss", epoch="1") == 1.0
    assert value(samples, report.TRIAL_METRIC, metric="loss", epoch="2") == 0.5
    assert math.isnan(value(samples, report.TRIAL_METRIC, metric="trainLoss", epoch="1"))  # pushed as is
    assert value(samples, report.TRIAL_METRIC, metric="trainLoss", epoch="2") == math.inf
    assert [own for n, own, _ in samples if n == report.EPOCH_END] == [{"epoch": "2"}]  # epoch 1: unknown
    assert value(samples, report.EPOCH_END, epoch="2") == 1_700_000_000.5
    assert value(samples, report.LATEST, metric="loss") == 0.5
    assert value(samples, report.EPOCHS) == 2
    assert len([n for n, _, _ in samples if n == report.TRIAL_METRIC]) == 4  # no "epoch" metric


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({}, "at least 1 item"),
        ({"trial-name": "a"}, "is not a Prometheus label name"),
        ({"__name": "a"}, "is not a Prometheus label name"),
        ({"epoch": "a"}, "is set by the trainer"),
    ],
)
def test_the_report_needs_a_grouping_key_of_label_names(labels: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MetricsReport(pushgateway="http://gateway:9091", labels=labels)


def test_a_failure_streak_is_logged_once_and_the_gateway_back_gets_the_whole_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    labels = {"namespace": "ns", "experiment": "e", "trial": "streak"}
    pusher = Pusher(MetricsReport(pushgateway=f"http://127.0.0.1:{port}", labels=labels))
    progress = TrainingState()
    for epoch in (1, 2):
        progress.history.append({"epoch": epoch, "loss": 1.0 / epoch})
        assert not pusher.push(progress.history, progress.ended)
    assert capsys.readouterr().err.count("push failed") == 1
    with Pushgateway(tmp_path, port=port) as gateway:
        progress.history.append({"epoch": 3, "loss": 1.0 / 3, "trainLoss": math.nan})
        pusher.saved(progress)  # the training observer's way: in the background
        pusher.close()
        samples = parse(gateway.metrics(), labels)
    assert [value(samples, report.TRIAL_METRIC, metric="loss", epoch=str(e)) for e in (1, 2, 3)] == [
        1.0,
        0.5,
        pytest.approx(1 / 3),
    ]
    assert value(samples, report.EPOCHS) == 3
    assert math.isnan(value(samples, report.LATEST, metric="trainLoss"))  # the gateway takes NaN
    assert "pushing again (3 epochs)" in capsys.readouterr().err
    assert pusher.attempts == 3 and not pusher.failing


def test_a_trial_pushes_every_epoch_and_a_resumed_one_its_inherited_epochs_too(
    make_spec: MakeSpec, run_trainer: RunTrainer, run_main: RunMain, gateway: Pushgateway, tmp_path: Path
) -> None:
    labels = {"namespace": "ns", "experiment": "e", "trial": f"pushed-{tmp_path.name}"}
    spec = make_spec([DENSE], "iris", epochs=3).model_copy(
        update={"report": MetricsReport(pushgateway=gateway.url, labels=labels), "stop_at_epoch": 2}
    )
    began = time.time()
    paused = run_trainer(spec)
    assert paused.returncode == 0, paused.stderr[-2000:]
    first = parse(gateway.metrics(), labels)
    assert value(first, report.EPOCHS) == 2
    ends = [value(first, report.EPOCH_END, epoch=str(e)) for e in (1, 2)]
    group = "/".join(f"{k}/{v}" for k, v in labels.items())
    urllib.request.urlopen(
        urllib.request.Request(f"{gateway.url}/metrics/job/kubenas-trial/{group}", method="DELETE")
    )
    assert parse(gateway.metrics(), labels) == []  # what the operator does once it has the curve

    status, _ = run_main(spec.model_copy(update={"stop_at_epoch": None}), "--resume")
    assert status == 0
    samples = parse(gateway.metrics(), labels)
    history = rows(tmp_path / "out")
    assert [row["epoch"] for row in history] == [1, 2, 3]
    for row in history:
        for name, number in row.items():
            if name != "epoch":
                assert value(samples, report.TRIAL_METRIC, metric=name, epoch=str(row["epoch"])) == number
    pushed = {own["metric"] for n, own, _ in samples if n == report.TRIAL_METRIC}
    assert pushed == set(history[0]) - {"epoch"} and len(pushed) >= 9
    assert {name: value(samples, report.LATEST, metric=name) for name in pushed} == {
        k: v for k, v in history[-1].items() if k != "epoch"
    }
    assert value(samples, report.EPOCHS) == 3
    times = [value(samples, report.EPOCH_END, epoch=str(e)) for e in (1, 2, 3)]
    assert (
        times[:2] == ends and began < times[0] < times[1] < times[2] < time.time()
    )  # kept by the checkpoint


def test_a_gateway_that_is_down_changes_nothing_and_is_not_retried(
    make_spec: MakeSpec, run_trainer: RunTrainer, tmp_path: Path
) -> None:
    epochs = 4
    spec = make_spec([DENSE], "iris", epochs=epochs)
    reference = tmp_path / "reference"
    reference.mkdir()
    expected = train(spec, reference)  # no report, in this process with one thread: the same arithmetic
    with HangUp() as down:
        labels = {"trial": "down"}
        proc = run_trainer(
            spec.model_copy(update={"report": MetricsReport(pushgateway=down.url, labels=labels)})
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = TrialResult.model_validate_json((tmp_path / "out" / "result.json").read_text())
    assert result.phase == "Succeeded" and result.curve == expected.curve
    assert result.test_metrics == expected.test_metrics
    assert {k: v for k, v in result.metrics.items() if k not in TIMING} == {
        k: v for k, v in expected.metrics.items() if k not in TIMING
    }
    # One attempt per epoch at most (the newest history only), none retried; the streak logged once.
    assert 1 <= down.connections <= epochs
    assert proc.stderr.count("push failed") == 1
    assert report.PUSH_TIMEOUT_SECONDS == 2.0


def test_gpu_readings_join_every_epochs_metrics_and_a_cpu_has_none(
    make_spec: MakeSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_spec([DENSE], "iris", epochs=2)
    (tmp_path / "cpu").mkdir()
    train(spec, tmp_path / "cpu")
    if not torch.cuda.is_available():
        assert not [k for row in rows(tmp_path / "cpu") for k in row if k.startswith("gpu")]
    readings = {"gpuUtilization": 42.0, "gpuPowerWatts": 99.5}
    monkeypatch.setattr(profiling, "gpu_readings", lambda device: readings)
    (tmp_path / "gpu").mkdir()
    train(spec, tmp_path / "gpu")
    assert all(readings.items() <= row.items() for row in rows(tmp_path / "gpu"))

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "gpu" / "tensorboard"))
    events.Reload()
    assert [s.value for s in events.Scalars("system/gpuUtilization")] == [42.0, 42.0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_every_epoch_has_the_drivers_readings(make_spec: MakeSpec, tmp_path: Path) -> None:
    readings = profiling.gpu_readings(torch.device("cuda"))
    if not readings:
        pytest.skip("the driver reports no utilisation or power (no NVML)")
    train(make_spec([DENSE], "iris", epochs=2), tmp_path)
    for row in rows(tmp_path):
        assert set(readings) <= set(row)
        assert 0 <= row["gpuUtilization"] <= 100 and row["gpuPowerWatts"] > 0
