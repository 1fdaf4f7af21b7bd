"""TensorBoard's HParams view of an experiment: one run per trial, with the trial's hyperparameters and
final metrics, compared in one table.

The trainer writes a session into its own run (run_dir/tensorboard, beside its scalars): a session start
with the candidate flattened by `flatten` when it begins, its result's metrics as scalars under
RESULT_GROUP/ (and TEST_GROUP/) after each segment, and a session end when it succeeds or fails. The
control plane writes the experiment's config (`experiment_summary`: every hyperparameter's domain and the
metric columns) at the root of a log directory that holds the trials' runs as subdirectories.

Torch-free and TensorFlow-free: summaries are tensorboard's protocol buffers, and `write_events` writes
event files with tensorboard's pure-Python record writer.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from kubenas_trainer.spec import Candidate, ClipMode, Schedule

if TYPE_CHECKING:
    from tensorboard.compat.proto.summary_pb2 import Summary

HParamValue = float | str | bool
# Scalar tags of a trial's result: RESULT_GROUP/<metric> (validation metrics of the best epoch, or of the
# last one when paused, and the costs: parameters, flops, trainingSeconds...), TEST_GROUP/<metric>.
RESULT_GROUP = "result"
TEST_GROUP = "test"
# Shown for a per-layer attribute that a layer of that type does not have (e.g. a dense layer's kernel).
NOT_APPLICABLE = "-"
SessionStatus = Literal["success", "failure"]


def _number(value: float) -> str:
    return f"{value:g}"


def _per_layer(values: Iterable[object]) -> str:
    """Comma-separated, one entry per layer, input to output."""
    out = []
    for value in values:
        if value is None:
            out.append(NOT_APPLICABLE)
        elif isinstance(value, bool):
            out.append(str(value).lower())
        elif isinstance(value, float):
            out.append(_number(value))
        else:
            out.append(str(value))
    return ",".join(out)


def flatten(candidate: Candidate) -> dict[str, HParamValue]:
    """A candidate as HParams values: every hyperparameter (its default where left unset, momentum and
    epochs only when set), the layer count, and each layer attribute as a comma-separated list."""
    hp, layers = candidate.hyperparameters, candidate.architecture.layers
    out: dict[str, HParamValue] = {
        "learningRate": hp.learning_rate,
        "optimizer": hp.optimizer.value,
        "batchSize": float(hp.batch_size),
        "weightDecay": hp.weight_decay or 0.0,
        "schedule": str(hp.schedule or Schedule.CONSTANT),
        "warmupEpochs": float(hp.warmup_epochs or 0),
        "gradientClip": hp.gradient_clip or 0.0,
        "gradientClipMode": str(hp.gradient_clip_mode or ClipMode.NORM),
        "labelSmoothing": hp.label_smoothing or 0.0,
        "layers": float(len(layers)),
        "layerTypes": _per_layer(layer.type.value for layer in layers),
        "units": _per_layer(layer.units for layer in layers),
        "activations": _per_layer(layer.activation.value for layer in layers),
        "dropout": _per_layer(layer.dropout for layer in layers),
        "kernelSizes": _per_layer(layer.kernel_size for layer in layers),
        "pooling": _per_layer(layer.pooling for layer in layers),
        "bidirectional": _per_layer(layer.bidirectional for layer in layers),
        "normalization": _per_layer(layer.normalization for layer in layers),
        "residual": _per_layer(layer.residual for layer in layers),
    }
    if hp.momentum is not None:
        out["momentum"] = hp.momentum
    if hp.epochs is not None:
        out["epochs"] = float(hp.epochs)
    return out


@dataclass(frozen=True)
class HParamColumn:
    """One hyperparameter column of the experiment: its type and, where known, its domain (a list of
    values, or an interval of numbers)."""

    name: str
    kind: Literal["number", "string", "bool"]
    values: Sequence[HParamValue] | None = None
    interval: tuple[float, float] | None = None
    description: str = ""


@dataclass(frozen=True)
class MetricColumn:
    tag: str  # a scalar tag of each trial's run, e.g. result/accuracy
    display_name: str = ""
    description: str = ""


def experiment_summary(
    hparams: Sequence[HParamColumn], metrics: Sequence[MetricColumn], created: float | None = None
) -> Summary:
    """The HParams config of an experiment (its columns), for the root of its log directory."""
    from google.protobuf import struct_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    types = {
        "number": api_pb2.DATA_TYPE_FLOAT64,
        "string": api_pb2.DATA_TYPE_STRING,
        "bool": api_pb2.DATA_TYPE_BOOL,
    }
    experiment = api_pb2.Experiment(time_created_secs=time.time() if created is None else created)
    for column in hparams:
        info = experiment.hparam_infos.add(name=column.name, description=column.description)
        info.type = types[column.kind]
        if column.values is not None:
            info.domain_discrete.CopyFrom(struct_pb2.ListValue())
            info.domain_discrete.extend(list(column.values))
        elif column.interval is not None:
            info.domain_interval.min_value, info.domain_interval.max_value = column.interval
    for metric in metrics:
        experiment.metric_infos.add(
            name=api_pb2.MetricName(group="", tag=metric.tag),
            display_name=metric.display_name or metric.tag,
            description=metric.description,
        )
    return _summary(metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=experiment))


def session_start(trial: str, hparams: Mapping[str, HParamValue], started: float | None = None) -> Summary:
    """A trial's session: its hyperparameters, in a group of its own (named after the trial)."""
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    info = plugin_data_pb2.SessionStartInfo(
        group_name=trial, start_time_secs=time.time() if started is None else started
    )
    for name, value in sorted(hparams.items()):
        if isinstance(value, bool):
            info.hparams[name].bool_value = value
        elif isinstance(value, int | float):
            info.hparams[name].number_value = float(value)
        else:
            info.hparams[name].string_value = value
    return _summary(
        metadata.SESSION_START_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_start_info=info)
    )


def session_end(status: SessionStatus, ended: float | None = None) -> Summary:
    """The end of a trial's session (a pause or an interruption is no end: the trial goes on later)."""
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    code = api_pb2.STATUS_SUCCESS if status == "success" else api_pb2.STATUS_FAILURE
    info = plugin_data_pb2.SessionEndInfo(status=code, end_time_secs=time.time() if ended is None else ended)
    return _summary(metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=info))


def _summary(tag: str, data: object) -> Summary:
    """A summary holding the plugin's data (an HParamsPluginData) under its tag."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import metadata

    summary = Summary()
    summary.value.add(tag=tag, metadata=metadata.create_summary_metadata(data), tensor=metadata.NULL_TENSOR)
    return summary


def write_events(path: Path, summaries: Iterable[Summary], step: int = 0) -> None:
    """A whole event file holding `summaries` at `step`, written under a name TensorBoard ignores (no
    "tfevents" in it) and renamed, so that it never reads half of it."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    tmp = path.with_name(f".{path.name.replace('tfevents', 'partial')}")
    with tmp.open("wb") as file:
        writer = RecordWriter(file)
        now = time.time()
        writer.write(Event(wall_time=now, file_version="brain.Event:2").SerializeToString())
        for summary in summaries:
            writer.write(Event(wall_time=now, step=step, summary=summary).SerializeToString())
        writer.flush()
    tmp.replace(path)
