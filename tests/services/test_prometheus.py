"""The test Prometheus scrapes a Pushgateway and keeps a pushed trial's labels."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from tests.services.prometheus import Prometheus, PrometheusError, ScrapeJob
from tests.services.pushgateway import Pushgateway

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("prometheus-pushgateway") is None,
    reason="Prometheus and the Pushgateway are not installed: run tests/services/install.sh",
)
# A namespace of this run's own: Debian's Pushgateway keeps what earlier tests pushed (its default
# --persistence.file is shared).
TRIAL = {"namespace": f"services-{os.getpid()}", "experiment": "digits", "trial": "digits-3"}
SELECTOR = f'namespace="{TRIAL["namespace"]}", trial="digits-3"'


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pushgateway, Prometheus]]:
    workdir = tmp_path_factory.mktemp("prometheus")
    with Pushgateway(workdir / "pushgateway") as gateway:
        target = f"127.0.0.1:{gateway.port}"
        jobs = [ScrapeJob("pushgateway", target, honor_labels=True), ("pushgateway-raw", target, False)]
        with Prometheus(workdir / "prometheus", jobs) as prometheus:
            yield gateway, prometheus


def push_latest(gateway: Pushgateway, values: dict[str, float]) -> None:
    registry = CollectorRegistry()
    latest = Gauge("kubenas_trial_latest", "The last epoch's value.", ["metric"], registry=registry)
    for metric, value in values.items():
        latest.labels(metric).set(value)
    push_to_gateway(gateway.url, job="kubenas-trial", registry=registry, grouping_key=TRIAL)


def test_pushed_labels_survive_the_scrape(servers: tuple[Pushgateway, Prometheus]) -> None:
    gateway, prometheus = servers
    push_latest(gateway, {"accuracy": 0.75, "loss": 0.5})
    (sample,) = prometheus.wait_for_series(
        f'kubenas_trial_latest{{job="kubenas-trial", {SELECTOR}, metric="accuracy"}}'
    )
    assert {k: sample["metric"][k] for k in TRIAL} == TRIAL
    assert float(sample["value"][1]) == 0.75
    # Without honor_labels the target's job wins and the pushed one is renamed.
    (raw,) = prometheus.wait_for_series(
        f'kubenas_trial_latest{{job="pushgateway-raw", {SELECTOR}, metric="loss"}}'
    )
    assert raw["metric"]["exported_job"] == "kubenas-trial"


def test_range_query_and_scalars(servers: tuple[Pushgateway, Prometheus]) -> None:
    gateway, prometheus = servers
    push_latest(gateway, {"accuracy": 0.75})
    selector = f'kubenas_trial_latest{{job="kubenas-trial", {SELECTOR}, metric="accuracy"}}'
    prometheus.wait_for_series(selector)
    prometheus.wait_for_series('up{job="pushgateway-raw"} == 1')
    end = time.time()
    (series,) = prometheus.query_range(selector, end - 5, end, 1)
    assert series["metric"]["trial"] == "digits-3"
    assert series["values"] and all(float(v) == 0.75 for _, v in series["values"])
    assert prometheus.query("scalar(vector(2))")[0]["value"][1] == "2"
    assert {t["labels"]["job"]: t["health"] for t in prometheus.targets()} == {
        "pushgateway": "up",
        "pushgateway-raw": "up",
    }


def test_a_refused_query_raises_with_the_error_text(servers: tuple[Pushgateway, Prometheus]) -> None:
    _, prometheus = servers
    with pytest.raises(PrometheusError, match="parse error"):
        prometheus.query("sum(kubenas_trial_latest")


def test_restart_keeps_port_and_storage(tmp_path: Path) -> None:
    with Prometheus(tmp_path, [], lifecycle=True) as prometheus:
        port = prometheus.port
        prometheus.reload([("self", f"127.0.0.1:{port}", False)])
        prometheus.wait_for_series('up{job="self"} == 1')
        prometheus.stop()
        prometheus.start()
        assert prometheus.port == port
        assert prometheus.query('count_over_time(up{job="self"}[1h])')
