"""What TensorBoard's HParams dashboard shows for a log directory: the plugin's own request handlers
(/experiment and /session_groups) over the data provider `tensorboard --logdir` builds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment, list_session_groups


@dataclass
class Session:
    """One row of the HParams table: a run, its hyperparameters, metrics (tag -> last value), status."""

    run: str
    group: str
    hparams: dict[str, Any]
    metrics: dict[str, float]
    status: str
    start_time: float
    end_time: float


@dataclass
class HParamsView:
    hparams: dict[str, dict[str, Any]]  # name -> HParamInfo as JSON (type, domain...)
    metrics: list[str]  # metric tags, in column order
    sessions: dict[str, Session] = field(default_factory=dict)  # run -> session


def hparams_view(logdir: Path) -> HParamsView:
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
    tb_context = base_plugin.TBContext(logdir=str(logdir), data_provider=provider, multiplexer=multiplexer)
    backend = backend_context.Context(tb_context)
    ctx = context.RequestContext()
    experiment = get_experiment.Handler(ctx, backend, "", api_pb2.GetExperimentRequest()).run()
    request = api_pb2.ListSessionGroupsRequest(
        start_index=0, slice_size=10000, allowed_statuses=api_pb2.Status.values()
    )
    for info in experiment.hparam_infos:
        request.col_params.add(hparam=info.name, exclude_missing_values=False, include_in_result=True)
    for metric in experiment.metric_infos:
        request.col_params.add(metric=metric.name, exclude_missing_values=False, include_in_result=True)
    groups = list_session_groups.Handler(ctx, backend, "", request).run()
    view = HParamsView(
        hparams={info.name: json_format.MessageToDict(info) for info in experiment.hparam_infos},
        metrics=[info.name.tag for info in experiment.metric_infos],
    )
    for group in groups.session_groups:
        for session in group.sessions:
            view.sessions[session.name] = Session(
                run=session.name,
                group=group.name,
                hparams={k: json_format.MessageToDict(v) for k, v in group.hparams.items()},
                metrics={m.name.tag: m.value for m in session.metric_values},
                status=api_pb2.Status.Name(session.status),
                start_time=session.start_time_secs,
                end_time=session.end_time_secs,
            )
    return view
