"""What the Grafana dashboard shows: its variables and every panel's PromQL, as plain data.

Trials push their metrics through a Pushgateway (labels namespace, experiment, trial); the operator
serves its own on /metrics (scrape job ``kubenas-operator``). `grafana.py` turns these tables into the
dashboard; the tests run every query against a real Prometheus.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

OPERATOR_JOB = "kubenas-operator"  # the scrape job of the operator's /metrics
EXPERIMENT = 'namespace=~"$namespace", experiment=~"$experiment"'  # the variables as a label filter
BEST = f"kubenas_experiment_best_objective{{{EXPERIMENT}}}"
OBJECTIVE = f"kubenas_experiment_objective{{{EXPERIMENT}}}"  # 1, labelled with the objective's metric


@dataclass(frozen=True)
class Target:
    """One query of a panel; `legend` is Grafana's legend format (``{{label}}`` is a label's value)."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    """A panel: a time series, or the latest value of each series (``stat``, ``bargauge``)."""

    title: str
    description: str
    targets: tuple[Target, ...]
    kind: Literal["timeseries", "stat", "bargauge"] = "timeseries"
    unit: str = "short"
    width: int = 12  # of the grid's 24 columns
    height: int = 8
    stacked: bool = False
    value_texts: tuple[tuple[str, str, str], ...] = ()  # (value, text, colour): a stat's value mapping


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Variable:
    """A query variable over label values; multi-select with "All" (which matches ``.*``)."""

    name: str
    label: str
    query: str  # Grafana's Prometheus variable query: label_values(selector, label)


VARIABLES = (
    Variable("namespace", "Namespace", "label_values(kubenas_experiment_trials, namespace)"),
    Variable(
        "experiment",
        "Experiment",
        'label_values(kubenas_experiment_trials{namespace=~"$namespace"}, experiment)',
    ),
)


def trial(metric: str) -> str:
    """The latest value of one of the trials' per-epoch metrics, per running trial."""
    return f'kubenas_trial_latest{{{EXPERIMENT}, metric="{metric}"}}'


def quantiles(histogram: str, by: str = "") -> tuple[Target, ...]:
    """p50 and p99 of an operator histogram over Grafana's rate interval (per `by` label, if any)."""
    labels = ", ".join(["le", *([by] if by else [])])
    prefix = f"{{{{{by}}}}} " if by else ""
    return tuple(
        Target(
            f"histogram_quantile({q}, sum by ({labels}) (rate({histogram}_bucket[$__rate_interval])))",
            f"{prefix}p{round(q * 100)}",
        )
        for q in (0.5, 0.99)
    )


EXPERIMENT_ROW = Row(
    "Experiment",
    (
        Panel(
            "Best objective",
            "The best objective value so far of each selected experiment.",
            (Target(BEST, "{{experiment}} ({{metric}})"),),
            kind="stat",
            width=8,
            height=5,
        ),
        Panel(
            "Trials now",
            "The selected experiments' trials by phase.",
            (Target(f"sum by (phase) (kubenas_experiment_trials{{{EXPERIMENT}}})", "{{phase}}"),),
            kind="stat",
            width=8,
            height=5,
        ),
        Panel(
            "Operator",
            f'Whether Prometheus reaches the operator\'s /metrics (scrape job "{OPERATOR_JOB}").',
            (Target(f'up{{job="{OPERATOR_JOB}"}}', "{{instance}}"),),
            kind="stat",
            width=8,
            height=5,
            value_texts=(("0", "Down", "red"), ("1", "Up", "green")),
        ),
        Panel(
            "Best objective so far",
            "The best trial's objective value over time, per experiment (named after its metric).",
            (Target(BEST, "{{experiment}} ({{metric}})"),),
        ),
        Panel(
            "Trials by phase",
            "How many trials are pending, running, paused, succeeded, failed or stopped.",
            (Target(f"sum by (phase) (kubenas_experiment_trials{{{EXPERIMENT}}})", "{{phase}}"),),
            stacked=True,
        ),
    ),
)

TRIALS_ROW = Row(
    "Trials",
    (
        Panel(
            "Objective by trial",
            "Each running trial's objective metric after its latest epoch.",
            (
                Target(
                    f"kubenas_trial_latest{{{EXPERIMENT}}}"
                    f" and on (namespace, experiment, metric) {OBJECTIVE}",
                    "{{trial}}",
                ),
            ),
        ),
        Panel(
            "Validation loss by trial",
            "Each running trial's validation loss after its latest epoch.",
            (Target(trial("loss"), "{{trial}}"),),
        ),
        Panel(
            "Epochs by trial",
            "Epochs each running trial has finished (a continued trial counts its inherited ones).",
            (Target(f"kubenas_trial_epochs{{{EXPERIMENT}}}", "{{trial}}"),),
            kind="bargauge",
        ),
        Panel(
            "Since last epoch",
            "Seconds since each running trial last finished an epoch: a stuck trial stands out.",
            (
                Target(
                    f"time() - max by (trial) (kubenas_trial_epoch_end_timestamp_seconds{{{EXPERIMENT}}})",
                    "{{trial}}",
                ),
            ),
            kind="bargauge",
            unit="s",
        ),
        Panel(
            "Throughput by trial",
            "Training samples per second in each running trial's latest epoch.",
            (Target(trial("samplesPerSecond"), "{{trial}}"),),
        ),
        Panel(
            "Epoch duration by trial",
            "Wall-clock seconds of each running trial's latest epoch.",
            (Target(trial("epochSeconds"), "{{trial}}"),),
            unit="s",
        ),
    ),
)

GPU_ROW = Row(
    "GPUs",
    (
        Panel(
            "GPU utilisation by trial",
            "The GPU's utilisation during each trial's latest epoch (trials on a GPU that reports it).",
            (Target(trial("gpuUtilization"), "{{trial}}"),),
            unit="percent",
        ),
        Panel(
            "GPU power by trial",
            "The GPU's power draw during each trial's latest epoch (trials on a GPU that reports it).",
            (Target(trial("gpuPowerWatts"), "{{trial}}"),),
            unit="watt",
        ),
    ),
)

OPERATOR_ROW = Row(
    "Operator (all experiments)",
    (
        Panel(
            "Reconcile duration",
            "One reconcile pass of an experiment.",
            quantiles("kubenas_reconcile_duration_seconds"),
            unit="s",
            width=8,
        ),
        Panel(
            "Trial done → next Job",
            "From a trial's segment ending (its Job completing) to the experiment's next Job being created.",
            quantiles("kubenas_next_job_delay_seconds"),
            unit="s",
            width=8,
        ),
        Panel(
            "Metrics delay",
            "From a trial's epoch ending to the operator first seeing its metrics.",
            quantiles("kubenas_metrics_delay_seconds"),
            unit="s",
            width=8,
        ),
        Panel(
            "Jobs created",
            "Trial Jobs created per minute (one per trial segment).",
            (Target("60 * sum(rate(kubenas_jobs_created_total[$__rate_interval]))", "Jobs/min"),),
            unit="cpm",
            width=8,
        ),
        Panel(
            "Errors",
            "The operator's errors per second, by reason.",
            (Target("sum by (reason) (rate(kubenas_errors_total[$__rate_interval]))", "{{reason}}"),),
            unit="reqps",
            width=8,
        ),
        Panel(
            "Strategy ask duration",
            "How long a search strategy took to propose trials.",
            quantiles("kubenas_strategy_ask_duration_seconds", by="strategy"),
            unit="s",
            width=8,
        ),
        Panel(
            "Operator memory",
            "The operator process's resident memory.",
            (Target(f'process_resident_memory_bytes{{job="{OPERATOR_JOB}"}}', "{{instance}}"),),
            unit="bytes",
        ),
        Panel(
            "Operator CPU",
            "CPU cores the operator process uses.",
            (
                Target(
                    f'rate(process_cpu_seconds_total{{job="{OPERATOR_JOB}"}}[$__rate_interval])',
                    "{{instance}}",
                ),
            ),
        ),
    ),
)

ROWS = (EXPERIMENT_ROW, TRIALS_ROW, GPU_ROW, OPERATOR_ROW)


def panel_queries() -> dict[str, tuple[str, ...]]:
    """Every panel's title and its PromQL expressions (Grafana's variables still in them)."""
    return {panel.title: tuple(t.expr for t in panel.targets) for row in ROWS for panel in row.panels}


PANEL_QUERIES = panel_queries()

# Grafana's built-in variables, as a test may fill them in; the dashboard's own ones match anything.
_DEFAULTS = {
    "namespace": ".*",
    "experiment": ".*",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def fill_variables(expr: str, values: Mapping[str, str] | None = None) -> str:
    """`expr` as Grafana would send it: ``$name`` / ``${name}`` replaced by `values` (default: every
    namespace and experiment, a 1m rate interval). A variable with no value raises KeyError."""
    known = {**_DEFAULTS, **(values or {})}
    return _VARIABLE.sub(lambda m: known[m.group(1) or m.group(2)], expr)
