"""The Grafana dashboard of kubenas (shipped in the Helm chart as helm/kubenas/dashboards/kubenas.json).

`panels.py` says what it shows (variables, panels, PromQL: plain data); `grafana.py` builds the JSON
model with grafana-foundation-sdk, a development dependency imported only inside `build_dashboard`, so
this package imports without it. Regenerate the file with
``python -m kubenas.dashboard --output helm/kubenas/dashboards/kubenas.json`` (``--check``: fail if stale).
"""

from .grafana import build_dashboard, render, write_dashboard
from .panels import (
    PANEL_QUERIES,
    ROWS,
    VARIABLES,
    Panel,
    Row,
    Target,
    Variable,
    fill_variables,
    panel_queries,
)

__all__ = [
    "PANEL_QUERIES",
    "ROWS",
    "VARIABLES",
    "Panel",
    "Row",
    "Target",
    "Variable",
    "build_dashboard",
    "fill_variables",
    "panel_queries",
    "render",
    "write_dashboard",
]
