"""The HParams view's pure parts: a candidate's values, the experiment's columns from its search space, and
summaries TensorBoard's own HParams plugin reads back (no torch, no TensorFlow)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubenas.api.experiment import NASExperimentSpec
from kubenas.local import tensorboard
from kubenas.local.store import RunStore
from kubenas_trainer import hparams
from kubenas_trainer.spec import Candidate
from tensorboard.compat.proto.summary_pb2 import Summary

from tests.e2e.hparams_view import hparams_view


def candidate(**hyperparameters: Any) -> Candidate:
    return Candidate.model_validate(
        {
            "architecture": {
                "layers": [
                    {"type": "conv2d", "units": 16, "activation": "relu", "kernelSize": 5, "pooling": "max"},
                    {"type": "dense", "units": 64, "activation": "tanh", "dropout": 0.25, "residual": True},
                ]
            },
            "hyperparameters": {
                "learningRate": 0.003,
                "optimizer": "sgd",
                "batchSize": 32,
                **hyperparameters,
            },
        }
    )


def spec(**sections: Any) -> NASExperimentSpec:
    return NASExperimentSpec.model_validate(sections)


def test_a_candidate_flattens_to_numbers_and_per_layer_lists() -> None:
    values = hparams.flatten(candidate(momentum=0.8, schedule="cosine"))
    assert values["learningRate"] == 0.003 and values["batchSize"] == 32.0 and values["layers"] == 2.0
    assert values["optimizer"] == "sgd" and values["momentum"] == 0.8 and values["schedule"] == "cosine"
    assert values["layerTypes"] == "conv2d,dense"
    assert values["units"] == "16,64"
    assert values["activations"] == "relu,tanh"
    assert values["dropout"] == "0,0.25"
    assert values["kernelSizes"] == "5,-" and values["pooling"] == "max,-"
    assert values["residual"] == "-,true" and values["bidirectional"] == "-,-"
    # Unset hyperparameters show their defaults; epochs only when the candidate sets them.
    assert (
        values["weightDecay"] == 0.0
        and values["warmupEpochs"] == 0.0
        and values["gradientClipMode"] == "norm"
    )
    assert "epochs" not in values and "epochs" in hparams.flatten(candidate(epochs=7))


def test_columns_follow_the_search_space() -> None:
    default = {c.name: c for c in tensorboard.hparam_columns(spec().search_space)}
    assert list(default) == [
        "learningRate",
        "optimizer",
        "batchSize",
        "layers",
        "layerTypes",
        "units",
        "activations",
        "dropout",
    ]
    assert default["learningRate"].interval == (1e-4, 1e-1)
    assert default["batchSize"].values == [32.0, 64.0, 128.0]
    assert default["optimizer"].values == ["adam"]
    assert default["layers"].interval == (1.0, 3.0)
    searched = spec(
        searchSpace={
            "layers": {
                "types": ["dense", "conv1d"],
                "kernelSizes": {"values": [3, 5]},
                "residual": [False, True],
            },
            "hyperparameters": {
                "weightDecay": {"min": 0.0, "max": 0.1},
                "schedules": ["constant", "cosine"],
                "epochs": {"values": [2, 4]},
                "labelSmoothing": {"values": [0.1]},  # one choice: no column
            },
        }
    )
    columns = {c.name: c for c in tensorboard.hparam_columns(searched.search_space)}
    assert {"weightDecay", "schedule", "epochs", "kernelSizes", "residual"} <= set(columns)
    assert not {"labelSmoothing", "momentum", "pooling", "gradientClipMode"} & set(columns)
    assert columns["schedule"].values == ["constant", "cosine"] and columns["epochs"].values == [2.0, 4.0]
    # Every column names a value the trainer reports for each candidate.
    assert set(columns) <= set(hparams.flatten(candidate(epochs=2)))


COSTS = ["epochs", "trainingSeconds", "parameters", "flops"]


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ({}, ["accuracy", "f1", "precision", "recall", "loss", *COSTS]),
        (
            {"training": {"testFraction": 0.1}},
            ["accuracy", "f1", "precision", "recall", "loss", *COSTS, "test"],
        ),
        (
            {"objective": {"metric": "r2"}, "training": {"dataset": "diabetes"}},
            ["r2", "mse", "mae", "loss", *COSTS],
        ),
        (  # a file: the task is unknown, and both report the loss
            {"objective": {"metric": "loss"}, "training": {"dataset": "x.csv"}},
            ["loss", "accuracy", "f1", "precision", "recall", "mse", "mae", "r2", *COSTS, "test"],
        ),
        (  # the objective tells a file's task
            {"objective": {"metric": "mae"}, "training": {"dataset": "x.csv"}},
            ["mae", "mse", "r2", "loss", *COSTS, "test"],
        ),
    ],
)
def test_metric_columns_are_the_tasks_with_the_objective_first(
    sections: dict[str, Any], expected: list[str]
) -> None:
    experiment = spec(**sections)
    objective = experiment.objective.metric
    names = [f"test/{objective}" if name == "test" else f"result/{name}" for name in expected]
    assert [m.tag for m in tensorboard.metric_columns(experiment)] == names


def test_the_plugin_lists_the_config_and_each_trials_session(tmp_path: Path) -> None:
    """Written as the runner and trainers write them, read by TensorBoard's HParams plugin."""
    store = RunStore(tmp_path / "exp")
    experiment_spec = spec(training={"testFraction": 0.2})
    tensorboard.write_config(store.root, experiment_spec)
    tensorboard.write_config(store.root, experiment_spec)  # a resumed run replaces it
    for name, lr, status in (("exp-0", 0.01, "success"), ("exp-1", 0.05, "failure"), ("exp-2", 0.02, None)):
        tensorboard.link_trial(store.root, store.trial_dir(name))
        run = store.trial_dir(name) / "tensorboard"
        run.mkdir(parents=True)
        summaries = [hparams.session_start(name, hparams.flatten(candidate(learningRate=lr)), started=100.0)]
        summaries += [hparams.session_end(status, ended=200.0)] if status else []
        hparams.write_events(run / "events.out.tfevents.1", summaries)
        metric = Summary(value=[Summary.Value(tag=f"{hparams.RESULT_GROUP}/accuracy", simple_value=lr * 10)])
        hparams.write_events(run / "events.out.tfevents.2", [metric], step=3)
    tensorboard.link_trial(store.root, store.trial_dir("exp-3"))  # recorded, never started: no run

    view = hparams_view(store.root / "tensorboard")
    assert len(list((store.root / "tensorboard").glob("*tfevents*"))) == 1
    assert view.hparams["optimizer"]["domainDiscrete"] == ["adam"]
    assert view.hparams["learningRate"]["domainInterval"] == {"minValue": 1e-4, "maxValue": 0.1}
    assert view.metrics[0] == "result/accuracy" and "test/accuracy" in view.metrics
    assert set(view.sessions) == {"exp-0", "exp-1", "exp-2"}
    for name, lr, status in (
        ("exp-0", 0.01, "SUCCESS"),
        ("exp-1", 0.05, "FAILURE"),
        ("exp-2", 0.02, "UNKNOWN"),
    ):
        session = view.sessions[name]
        assert session.group == name and session.status == f"STATUS_{status}"
        assert session.hparams["learningRate"] == lr and session.hparams["layerTypes"] == "conv2d,dense"
        assert session.metrics == {"result/accuracy": pytest.approx(lr * 10)}
        assert session.start_time == 100.0


def test_the_log_directory_needs_neither_torch_nor_tensorflow(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path\n"
        "from kubenas.api.experiment import NASExperimentSpec\n"
        "from kubenas.local import tensorboard\n"
        f"tensorboard.write_config(Path({str(tmp_path)!r}), NASExperimentSpec())\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'tensorflow'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"
    assert (tmp_path / "tensorboard" / tensorboard.CONFIG_FILE).stat().st_size > 0
