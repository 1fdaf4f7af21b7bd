"""`kubenas run` leaves one TensorBoard log directory per experiment whose HParams view compares every
trial: the experiment's columns, and per trial its own hyperparameters, final metrics, status and scalars."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubenas.api.experiment import NASExperimentSpec
from kubenas.local import tensorboard
from kubenas_trainer import artifacts, hparams
from kubenas_trainer.spec import Candidate, Training, TrialResult, TrialSpec
from kubenas_trainer.stopping import Interrupted
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from .hparams_view import hparams_view
from .local_run import run_manifest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def manifest() -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())
    spec = doc["spec"]
    spec["objective"].pop("target")
    spec["searchSpace"]["layers"] = {
        "count": {"min": 1, "max": 2},
        "units": {"values": [16, 32]},
        "activations": ["relu", "tanh"],
        "dropout": {"values": [0.0, 0.1]},
    }
    spec["budget"] = {"maxTrials": 4, "parallelTrials": 2, "maxFailedTrials": 0}
    spec["training"]["epochs"] = 3
    # ASHA: every trial pauses after epoch 1, the best third resumes to epoch 3 and succeeds, the others
    # end Stopped (their sessions never end).
    spec["earlyStopping"] = {"rule": "asha", "minEpochs": 1, "reductionFactor": 3}
    return doc


def test_every_trial_is_a_session_of_the_experiments_hparams_view(tmp_path: Path) -> None:
    doc = manifest()
    run_manifest(doc, tmp_path)
    run_dir = tmp_path / "runs" / "digits"
    log_dir = run_dir / "tensorboard"
    view = hparams_view(log_dir)

    # The experiment's columns: the searched hyperparameters with the manifest's domains, then the metrics.
    assert set(view.hparams) == {
        "learningRate",
        "optimizer",
        "batchSize",
        "layers",
        "layerTypes",
        "units",
        "activations",
        "dropout",
    }
    assert view.hparams["learningRate"]["domainInterval"] == {"minValue": 0.0003, "maxValue": 0.03}
    assert view.hparams["optimizer"]["domainDiscrete"] == ["adam", "adamw", "sgd"]
    assert view.hparams["batchSize"]["domainDiscrete"] == [32.0, 64.0, 128.0]
    assert view.hparams["layers"]["domainInterval"] == {"minValue": 1.0, "maxValue": 2.0}
    assert view.metrics[:5] == [f"result/{m}" for m in ("accuracy", "f1", "precision", "recall", "loss")]
    assert {"result/epochs", "result/trainingSeconds", "result/parameters", "test/accuracy"} <= set(
        view.metrics
    )

    # One session per trial, in its own group, with that trial's own values and its final metrics.
    trials = sorted(p.name for p in (run_dir / "trials").iterdir())
    assert trials == [f"digits-{i}" for i in range(4)] and set(view.sessions) == set(trials)
    phases = []
    for name in trials:
        spec = json.loads((run_dir / "trials" / name / "trial.json").read_text())
        status = json.loads((run_dir / "trials" / name / "status.json").read_text())
        session = view.sessions[name]
        flat = hparams.flatten(Candidate.model_validate(spec["candidate"]))
        assert session.group == name
        assert session.hparams == {k: flat[k] for k in view.hparams}, name
        phases.append(status["phase"])
        expected_status = {"Succeeded": "STATUS_SUCCESS", "Stopped": "STATUS_UNKNOWN"}[status["phase"]]
        assert session.status == expected_status, (name, status["phase"])
        for metric, value in status["metrics"].items():
            if f"result/{metric}" in view.metrics:
                assert session.metrics[f"result/{metric}"] == pytest.approx(value, rel=1e-6), (name, metric)
        assert session.metrics["result/epochs"] == status["epochs"]
        if status["phase"] == "Succeeded":  # test metrics come with the end, a pause has none
            test_accuracy = status["testMetrics"]["accuracy"]
            assert session.metrics["test/accuracy"] == pytest.approx(test_accuracy, rel=1e-6)
        else:
            assert "test/accuracy" not in session.metrics

        # The same run holds the trial's per-epoch scalars, through the experiment's log directory.
        scalars = EventAccumulator(str(log_dir / name))
        scalars.Reload()
        curve = [event.value for event in scalars.Scalars("validation/accuracy")]
        assert [event.step for event in scalars.Scalars("validation/accuracy")] == list(
            range(1, status["epochs"] + 1)
        )
        assert curve == pytest.approx(status["curve"], abs=1e-5)
        assert "train/trainLoss" in scalars.Tags()["scalars"]
    assert "Succeeded" in phases and "Stopped" in phases  # both kinds of session were seen

    # Running the finished experiment again changes nothing: one config, the same sessions.
    run_manifest(doc, tmp_path)
    assert [p.name for p in log_dir.glob("*tfevents*")] == [tensorboard.CONFIG_FILE]
    again = hparams_view(log_dir)
    assert again.hparams == view.hparams and again.sessions == view.sessions


def trial_spec() -> TrialSpec:
    candidate = {
        "architecture": {"layers": [{"type": "dense", "units": 8, "activation": "relu"}]},
        "hyperparameters": {"learningRate": 0.01, "optimizer": "adam", "batchSize": 16},
    }
    return TrialSpec(
        name="exp-7",
        candidate=Candidate.model_validate(candidate),
        training=Training(dataset="iris", epochs=2),
        seed=0,
    )


def session_status(run_dir: Path) -> str:
    """The HParams status of trial exp-7 of an experiment in run_dir."""
    tensorboard.write_config(run_dir, NASExperimentSpec())
    tensorboard.link_trial(run_dir, run_dir / "trials" / "exp-7")
    session = hparams_view(run_dir / "tensorboard").sessions["exp-7"]
    assert session.hparams["learningRate"] == 0.01 and session.hparams["units"] == "8"
    return session.status


@pytest.mark.parametrize(("phase", "status"), [("Succeeded", "STATUS_SUCCESS"), ("Paused", "STATUS_UNKNOWN")])
def test_a_session_ends_when_the_trial_succeeds_not_when_it_pauses(
    tmp_path: Path, phase: str, status: str
) -> None:
    events = artifacts.EventLog(tmp_path / "trials" / "exp-7" / "tensorboard", trial_spec())
    with contextlib.closing(events), events.failures_recorded():
        events.result(TrialResult(name="exp-7", phase=phase, metrics={"accuracy": 0.5}, epochs=1))  # type: ignore[arg-type]
    assert session_status(tmp_path) == status


@pytest.mark.parametrize(
    ("error", "status"),
    [(ValueError("diverged"), "STATUS_FAILURE"), (Interrupted(1, Path("checkpoint.pt")), "STATUS_UNKNOWN")],
)
def test_a_session_ends_failed_when_training_raises_but_not_on_sigterm(
    tmp_path: Path, error: Exception, status: str
) -> None:
    events = artifacts.EventLog(tmp_path / "trials" / "exp-7" / "tensorboard", trial_spec())
    with pytest.raises(type(error)), contextlib.closing(events), events.failures_recorded():
        raise error
    assert session_status(tmp_path) == status
