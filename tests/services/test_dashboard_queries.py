"""Every query of the Grafana dashboard, run against a real Prometheus that scrapes a Pushgateway (two
trials' pushed metrics) and a stand-in for the operator's /metrics (the same names and labels): each one
is valid PromQL, returns series, and follows the namespace / experiment selection."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator

import pytest
from kubenas.dashboard import PANEL_QUERIES, fill_variables
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, push_to_gateway, start_http_server
from prometheus_client.process_collector import ProcessCollector

from tests.services.net import free_port
from tests.services.prometheus import Prometheus, ScrapeJob
from tests.services.pushgateway import Pushgateway

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("prometheus-pushgateway") is None,
    reason="Prometheus and the Pushgateway are not installed: run tests/services/install.sh",
)
# A namespace of this run's own, so the queries can be shown to select it and nothing else.
NAMESPACE, EXPERIMENT = f"dashboard-{os.getpid()}", "digits"
SELECTED = {"namespace": NAMESPACE}
TRIALS = ("digits-0", "digits-1")


def push_trial(gateway: Pushgateway, trial: str, accuracy: float) -> None:
    """What a trial pushes after its second epoch."""
    registry = CollectorRegistry()
    latest = Gauge("kubenas_trial_latest", "", ["metric"], registry=registry)
    per_epoch = Gauge("kubenas_trial_metric", "", ["metric", "epoch"], registry=registry)
    ended = Gauge("kubenas_trial_epoch_end_timestamp_seconds", "", ["epoch"], registry=registry)
    Gauge("kubenas_trial_epochs", "", registry=registry).set(2)
    values = {
        "accuracy": accuracy,
        "loss": 1 - accuracy,
        "trainLoss": 0.5,
        "learningRate": 0.01,
        "epochSeconds": 3.0,
        "samplesPerSecond": 900.0,
        "trainingSeconds": 6.0,
        "gpuUtilization": 80.0,
        "gpuPowerWatts": 250.0,
    }
    for metric, value in values.items():
        latest.labels(metric).set(value)
        for epoch in ("1", "2"):
            per_epoch.labels(metric, epoch).set(value)
    for epoch in ("1", "2"):
        ended.labels(epoch).set(time.time() - 3 + int(epoch))
    key = {"namespace": NAMESPACE, "experiment": EXPERIMENT, "trial": trial}
    push_to_gateway(gateway.url, job="kubenas-trial", registry=registry, grouping_key=key)


class OperatorMetrics:
    """The operator's metrics as the contract names them, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        trials = Gauge(
            "kubenas_experiment_trials", "", ["namespace", "experiment", "phase"], registry=registry
        )
        trials.labels(NAMESPACE, EXPERIMENT, "Running").set(2)
        trials.labels(NAMESPACE, EXPERIMENT, "Succeeded").set(1)
        best = Gauge(
            "kubenas_experiment_best_objective", "", ["namespace", "experiment", "metric"], registry=registry
        )
        best.labels(NAMESPACE, EXPERIMENT, "accuracy").set(0.9)
        objective = Gauge(
            "kubenas_experiment_objective", "", ["namespace", "experiment", "metric"], registry=registry
        )
        objective.labels(NAMESPACE, EXPERIMENT, "accuracy").set(1)
        self.jobs = Counter("kubenas_jobs_created_total", "", registry=registry)
        self.errors = Counter("kubenas_errors_total", "", ["reason"], registry=registry)
        self.ask = Histogram("kubenas_strategy_ask_duration_seconds", "", ["strategy"], registry=registry)
        self.delays = [
            Histogram(f"kubenas_{name}_seconds", "", registry=registry)
            for name in ("reconcile_duration", "next_job_delay", "metrics_delay")
        ]

    def keep_busy(self, seconds: float) -> None:
        """Count and observe a little every 0.2 s, so that rates and quantiles have data."""
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            self.jobs.inc()
            self.errors.labels("ApiError").inc()
            self.ask.labels("random").observe(0.01)
            for histogram in self.delays:
                histogram.observe(0.3)
            time.sleep(0.2)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    workdir = tmp_path_factory.mktemp("dashboard")
    operator = OperatorMetrics()
    port = free_port()
    server, _ = start_http_server(port, addr="127.0.0.1", registry=operator.registry)
    try:
        with Pushgateway(workdir / "pushgateway") as gateway:
            for index, trial in enumerate(TRIALS):
                push_trial(gateway, trial, 0.8 + index / 10)
            jobs = [
                ScrapeJob("pushgateway", f"127.0.0.1:{gateway.port}", honor_labels=True),
                ScrapeJob("kubenas-operator", f"127.0.0.1:{port}", honor_labels=False),
            ]
            with Prometheus(workdir / "prometheus", jobs) as prom:
                prom.wait_for_series('up{job="kubenas-operator"} == 1')
                operator.keep_busy(3)  # three scrapes' worth
                yield prom
    finally:
        server.shutdown()


@pytest.mark.parametrize("title", sorted(PANEL_QUERIES))
def test_panel_queries_return_series(prometheus: Prometheus, title: str) -> None:
    for expr in PANEL_QUERIES[title]:
        result = prometheus.wait_for_series(fill_variables(expr, SELECTED), timeout=15)
        end = time.time()
        assert prometheus.query_range(fill_variables(expr, SELECTED), end - 60, end, 5), expr
        if "kubenas_trial_" in expr:  # one series per running trial
            assert {s["metric"].get("trial") for s in result} == set(TRIALS), expr


def test_selection_filters_experiment_panels(prometheus: Prometheus) -> None:
    chosen = {"namespace": NAMESPACE, "experiment": f"({EXPERIMENT}|other)"}
    elsewhere = {"namespace": f"{NAMESPACE}-b", "experiment": ".*"}
    for title in ("Best objective so far", "Trials by phase", "Objective by trial", "Epochs by trial"):
        (expr,) = PANEL_QUERIES[title]
        assert prometheus.query(fill_variables(expr, chosen)), title
        assert prometheus.query(fill_variables(expr, elsewhere)) == [], title


def test_objective_by_trial_shows_only_the_objective_metric(prometheus: Prometheus) -> None:
    (expr,) = PANEL_QUERIES["Objective by trial"]
    series = prometheus.query(fill_variables(expr, SELECTED))
    assert sorted((s["metric"]["trial"], s["metric"]["metric"], s["value"][1]) for s in series) == [
        ("digits-0", "accuracy", "0.8"),
        ("digits-1", "accuracy", "0.9"),
    ]
