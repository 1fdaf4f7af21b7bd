"""The panel tables (`panels.py`) as a Grafana dashboard JSON model, built with grafana-foundation-sdk.

The SDK is a development dependency (the operator image installs without it): it is imported inside
`build_dashboard`, so importing this module needs nothing beyond the standard library.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .panels import ROWS, VARIABLES, Panel

if TYPE_CHECKING:
    from grafana_foundation_sdk.cog.builder import Builder
    from grafana_foundation_sdk.models.dashboard import DataSourceRef

UID = "kubenas"
TITLE = "kubenas"


def build_dashboard() -> dict[str, Any]:
    """The dashboard's JSON model (what Grafana imports, or its sidecar reads from a ConfigMap)."""
    from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, QueryVariable
    from grafana_foundation_sdk.builders.dashboard import Row as RowBuilder
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import (
        DashboardCursorSync,
        DataSourceRef,
        VariableOption,
        VariableRefresh,
        VariableSort,
    )

    datasource = DataSourceRef(type_val="prometheus", uid="${datasource}")
    every = VariableOption(selected=True, text="All", value="$__all")
    dashboard = (
        Dashboard(TITLE)
        .uid(UID)
        .description("kubenas experiments: objectives, trials' live metrics, GPUs and the operator's health.")
        .tags(["kubenas"])
        .refresh("10s")
        .time("now-1h", "now")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
    )
    for variable in VARIABLES:
        dashboard = dashboard.with_variable(
            QueryVariable(variable.name)
            .label(variable.label)
            .query(variable.query)
            .datasource(datasource)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(every)
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
        )
    panel_id = 0
    for row in ROWS:
        panel_id += 1
        dashboard = dashboard.with_row(RowBuilder(row.title).id(panel_id))
        for panel in row.panels:
            panel_id += 1
            dashboard = dashboard.with_panel(_panel(panel, panel_id, datasource))
    model: dict[str, Any] = json.loads(json.dumps(dashboard.build(), cls=JSONEncoder))
    return model


def render(model: dict[str, Any]) -> str:
    """The dashboard file's text: sorted keys, two-space indent, a trailing newline."""
    return json.dumps(model, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def write_dashboard(path: Path, check: bool = False) -> bool:
    """Write the dashboard's file to `path`; with `check`, write nothing. False: `path` was stale."""
    text = render(build_dashboard())
    current = path.exists() and path.read_text(encoding="utf-8") == text
    if not check and not current:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return current or not check


def _panel(panel: Panel, panel_id: int, datasource: DataSourceRef) -> Builder[Any]:
    from grafana_foundation_sdk.builders import bargauge, common, prometheus, stat, timeseries
    from grafana_foundation_sdk.models.common import (
        BarGaugeDisplayMode,
        BigValueColorMode,
        BigValueGraphMode,
        LegendDisplayMode,
        LegendPlacement,
        SortOrder,
        StackingMode,
        TooltipDisplayMode,
        VizOrientation,
    )
    from grafana_foundation_sdk.models.dashboard import ValueMap, ValueMappingResult

    builder: Any
    if panel.kind == "timeseries":
        builder = (
            timeseries.Panel()
            .fill_opacity(20 if panel.stacked else 0)
            .legend(
                common.VizLegendOptions()
                .display_mode(LegendDisplayMode.LIST)
                .placement(LegendPlacement.BOTTOM)
                .show_legend(True)
            )
            .tooltip(common.VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING))
        )
        if panel.stacked:
            builder = builder.stacking(common.StackingConfig().mode(StackingMode.NORMAL))
    elif panel.kind == "stat":
        builder = (
            stat.Panel()
            .graph_mode(BigValueGraphMode.NONE)
            .color_mode(BigValueColorMode.VALUE if panel.value_texts else BigValueColorMode.NONE)
            .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        )
    else:
        builder = (
            bargauge.Panel()
            .display_mode(BarGaugeDisplayMode.GRADIENT)
            .orientation(VizOrientation.HORIZONTAL)
            .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        )
    builder = (
        builder.id(panel_id)
        .title(panel.title)
        .description(panel.description)
        .datasource(datasource)
        .unit(panel.unit)
        .span(panel.width)
        .height(panel.height)
    )
    if panel.value_texts:
        options = {
            value: ValueMappingResult(text=text, color=color) for value, text, color in panel.value_texts
        }
        builder = builder.mappings([ValueMap(options=options)])
    for index, target in enumerate(panel.targets):
        query = (
            prometheus.Dataquery()
            .expr(target.expr)
            .legend_format(target.legend)
            .ref_id(chr(ord("A") + index))
        )
        # A time series wants the range; a stat or bar gauge only the latest value.
        builder = builder.with_target(query.range() if panel.kind == "timeseries" else query.instant())
    result: Builder[Any] = builder
    return result
