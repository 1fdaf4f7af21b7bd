"""Live metrics and artifacts on a cluster with no checkpoint volume: trials push every epoch to a real
Pushgateway scraped by a real Prometheus and upload their run directories to an S3-compatible server
(moto); the operator reads the epochs back, continues trials from their checkpoints in storage, and
serves its own /metrics, which Prometheus scrapes too."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubenas.dashboard import PANEL_QUERIES, fill_variables
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from tests.services.net import free_port
from tests.services.prometheus import Prometheus, ScrapeJob
from tests.services.pushgateway import Pushgateway
from tests.services.s3 import CREDENTIALS, S3Server

from .conftest import get_json, wait_for
from .fixtures import Cluster
from .operator_process import OperatorProcess
from .test_operator import condition, diagnostics, experiment, finished

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
BUCKET, SECRET = "kubenas", "s3-credentials"
EXPORT_CHECK = """
import sys
class Block:
    def find_spec(self, name, *args):
        if name.split('.')[0] in ('kubenas', 'kubenas_trainer'):
            raise ImportError('kubenas code must not be needed: ' + name)
sys.meta_path.insert(0, Block())
import torch
model = torch.export.load(sys.argv[1]).module()
print(list(model(torch.rand(3, 1, 8, 8) * 16).shape))
"""


@dataclass
class Channels:
    pushgateway: Pushgateway
    s3: S3Server
    prometheus: Prometheus
    operator: OperatorProcess
    namespace: str

    def objects(self, prefix: str) -> dict[str, int]:
        listing = self.s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return {o["Key"]: o["Size"] for o in listing.get("Contents", [])}

    def read(self, key: str) -> bytes:
        body: bytes = self.s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return body

    def prefix(self, experiment: str, trial: str = "") -> str:
        return f"kubenas/{self.namespace}/{experiment}/{trial + '/' if trial else ''}"


@pytest.fixture
def channels(kube: Cluster, namespace: str, tmp_path: Path) -> Iterator[Channels]:
    """The Pushgateway, S3 and Prometheus on loopback, the credentials Secret, and an operator whose
    defaults name them (an experiment then needs no metrics or storage section of its own)."""
    metrics_port = free_port()
    with Pushgateway(tmp_path / "pushgateway") as pushgateway, S3Server() as s3:
        s3.client().create_bucket(Bucket=BUCKET)
        jobs = [
            ScrapeJob("pushgateway", f"127.0.0.1:{pushgateway.port}", honor_labels=True),
            ScrapeJob("kubenas-operator", f"127.0.0.1:{metrics_port}"),
        ]
        secret = [f"--from-literal={k}={v}" for k, v in CREDENTIALS.items()]
        kube.kubectl("create", "secret", "generic", SECRET, "-n", namespace, *secret)
        with Prometheus(tmp_path / "prometheus", jobs) as prometheus:
            flags = [
                *("--metrics-port", str(metrics_port)),
                *("--pushgateway", pushgateway.url, "--prometheus", prometheus.url),
                *("--storage-bucket", BUCKET, "--storage-endpoint", s3.endpoint),
                *("--storage-region", CREDENTIALS["AWS_DEFAULT_REGION"], "--storage-secret", SECRET),
            ]
            log = tmp_path / "operator.log"
            with OperatorProcess(kube.kubeconfig, namespace, log, flags, env=CREDENTIALS) as operator:
                yield Channels(pushgateway, s3, prometheus, operator, namespace)


def run(kube: Cluster, channels: Channels, doc: dict[str, Any], timeout: float = 400) -> dict[str, Any]:
    kube.kubectl("apply", "-n", channels.namespace, "-f", "-", input=yaml.safe_dump(doc))
    name = doc["metadata"]["name"]
    return wait_for(  # type: ignore[no-any-return]
        lambda: finished(kube, channels.namespace, name),
        timeout,
        f"experiment {name} to finish",
        lambda: diagnostics(kube, channels.namespace, channels.operator),
    )


def trials_of(kube: Cluster, namespace: str, experiment_name: str) -> dict[str, dict[str, Any]]:
    items = get_json(kube, "nastrials", "-n", namespace, "-l", f"kubenas.dev/experiment={experiment_name}")
    return {t["metadata"]["name"]: t for t in items["items"]}


def pod_log(kube: Cluster, namespace: str, job: str) -> str:
    assert kube.agent is not None
    pod = get_json(kube, "pods", "-n", namespace, "-l", f"job-name={job}")["items"][0]
    logs: str = kube.agent.logs(namespace, pod["metadata"]["name"])["trainer"]
    return logs


@pytest.mark.skipif("os.environ.get('KUBENAS_TEST_KUBECONFIG')", reason="reads pod logs from the local node")
def test_asha_continues_trials_from_object_storage_and_every_channel_carries_data(
    kube: Cluster, channels: Channels, tmp_path: Path
) -> None:
    started = time.time()
    asha = {"rule": "asha", "minEpochs": 1, "reductionFactor": 3}
    strategy = {"name": "tpe", "seed": 3, "settings": {"nStartupTrials": 3}}
    doc = experiment("s3asha", max_trials=4, parallel=2, epochs=9, earlyStopping=asha, strategy=strategy)
    done = run(kube, channels, doc)
    ns = channels.namespace

    status = done["status"]
    assert status["phase"] == "Succeeded", status
    trials = trials_of(kube, ns, "s3asha")
    full = [n for n, t in trials.items() if t["status"]["phase"] == "Succeeded"]
    assert full and status["best"]["trial"] in full
    jobs = {j["metadata"]["name"] for j in get_json(kube, "jobs", "-n", ns)["items"]}
    for name in full:  # promoted twice, each time in a new pod that fetched the checkpoint from S3
        assert {name, f"{name}-e1", f"{name}-e3"} <= jobs
        checkpoint = f"s3://{BUCKET}/{channels.prefix('s3asha', name)}checkpoint.pt"
        for after in (1, 3):
            log = pod_log(kube, ns, f"{name}-e{after}")
            assert f"fetched {checkpoint}" in log and f"after epoch {after}" in log, log
        rows = channels.read(channels.prefix("s3asha", name) + "metrics.jsonl").decode().splitlines()
        assert [json.loads(r)["epoch"] for r in rows] == list(range(1, 10))  # no epoch trained twice
    for name, trial in trials.items():
        uri = f"s3://{BUCKET}/{channels.prefix('s3asha', name)}"
        assert (
            trial["status"]["artifacts"] == uri and len(trial["status"]["curve"]) == trial["status"]["epochs"]
        )
        stored = channels.objects(channels.prefix("s3asha", name))
        assert {"result.json", "metrics.jsonl", "checkpoint.pt"} <= {k.rsplit("/", 1)[-1] for k in stored}

    # status.best names an exported model that loads and predicts with torch alone
    best = status["best"]
    assert best["modelUri"] == f"s3://{BUCKET}/{channels.prefix('s3asha', best['trial'])}model.pt2"
    assert any("tensorboard/" in k for k in channels.objects(channels.prefix("s3asha", best["trial"])))
    model = tmp_path / "model.pt2"
    model.write_bytes(channels.read(best["modelUri"].removeprefix(f"s3://{BUCKET}/")))
    out = subprocess.run([sys.executable, "-c", EXPORT_CHECK, str(model)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[3, 10]", out.stderr

    # Prometheus holds every trial's per-epoch series (the Pushgateway groups are gone by now)
    now = time.time()
    accuracy = f'kubenas_trial_metric{{namespace="{ns}",experiment="s3asha",metric="accuracy"}}'
    series = channels.prometheus.query_range(accuracy, started, now, 1)
    epochs: dict[str, set[int]] = {}
    for s in series:
        epochs.setdefault(s["metric"]["trial"], set()).add(int(s["metric"]["epoch"]))
    assert sorted(epochs) == sorted(trials)
    for name, trial in trials.items():
        assert epochs[name] == set(range(1, trial["status"]["epochs"] + 1)), (name, epochs[name])
    # nothing stale: each trial's group was deleted when its segment ended
    wait_for(
        lambda: channels.prometheus.query(f'kubenas_trial_epochs{{namespace="{ns}"}}') == [], 15, "staleness"
    )

    # the operator's own metrics, scraped by Prometheus
    created = channels.prometheus.query('kubenas_jobs_created_total{job="kubenas-operator"}')
    assert created and float(created[0]["value"][1]) >= len(jobs)
    for histogram in ("reconcile_duration", "next_job_delay", "metrics_delay"):
        count = channels.prometheus.query(f"kubenas_{histogram}_seconds_count")
        assert count and float(count[0]["value"][1]) > 0, histogram
    available = condition(done, "MetricsAvailable")
    assert available is not None and available["status"] == "True"

    # every dashboard panel's query returns data; no GPU here, so a stand-in pushes what a GPU trial would
    registry = CollectorRegistry()
    gpu = Gauge("kubenas_trial_latest", "stand-in for a GPU trial", ["metric"], registry=registry)
    gpu.labels("gpuUtilization").set(87.0)
    gpu.labels("gpuPowerWatts").set(310.0)
    labels = {"namespace": ns, "experiment": "s3asha", "trial": "gpu-stand-in"}
    push_to_gateway(channels.pushgateway.url, job="kubenas-trial", grouping_key=labels, registry=registry)
    channels.prometheus.wait_for_series('kubenas_trial_latest{trial="gpu-stand-in"}')
    values = {"namespace": ns, "experiment": "s3asha"}
    for title, queries in PANEL_QUERIES.items():
        for query in queries:
            filled = fill_variables(query, values)
            # up to a little ahead: a range's last step may fall before a series that just appeared
            result = channels.prometheus.query_range(filled, started, time.time() + 5, 1)
            assert result, f"panel {title!r}: no data for {filled}"


def test_median_rule_stops_a_hopeless_trial_from_live_prometheus_data(
    kube: Cluster, channels: Channels
) -> None:
    """No checkpoint volume and no shared files: the running trial's epochs reach the operator only
    through the Pushgateway and Prometheus, and the median rule stops it before its last epoch."""
    from kubenas.api import NASExperiment
    from kubenas.strategies import make_strategy

    doc = experiment("median", max_trials=2, parallel=1, epochs=40)
    doc["spec"]["searchSpace"] = {
        "layers": {"count": {"values": [1]}, "units": {"values": [32]}, "activations": ["relu"]},
        "hyperparameters": {
            "learningRate": {"values": [0.00001, 0.01]},
            "optimizers": ["adam"],
            "batchSize": {"values": [8]},  # many steps per epoch: the rule can act before the last one
        },
    }
    doc["spec"]["objective"] = {"metric": "accuracy"}
    doc["spec"]["earlyStopping"] = {"rule": "median", "graceEpochs": 2, "minTrials": 1}
    for seed in range(50):  # a seed whose first trial learns and whose second cannot: the rule compares them
        doc["spec"]["strategy"] = {"name": "random", "seed": seed}
        spec = NASExperiment.model_validate(doc).spec
        rates = [c.hyperparameters.learning_rate for c in make_strategy(spec).ask([], 2)]
        if rates == [0.01, 0.00001]:
            break
    done = run(kube, channels, doc)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    trials = trials_of(kube, channels.namespace, "median")
    good, hopeless = trials["median-0"]["status"], trials["median-1"]["status"]
    assert good["phase"] == "Succeeded" and good["epochs"] == 40
    assert hopeless["phase"] == "Stopped", hopeless
    assert hopeless["message"].startswith("early stopping: best"), hopeless
    assert 2 < hopeless["epochs"] < 40 and len(hopeless["curve"]) == hopeless["epochs"], hopeless
    events = get_json(kube, "events", "-n", channels.namespace, "--field-selector", "reason=TrialStopped")
    assert any(e["message"].startswith("median-1: early stopping") for e in events["items"])


@pytest.mark.skipif("os.environ.get('KUBENAS_TEST_KUBECONFIG')", reason="stops the test's own servers")
def test_a_pushgateway_and_a_storage_outage_lose_nothing(kube: Cluster, channels: Channels) -> None:
    """The Pushgateway stops for good mid-experiment and S3 for 60 s: every trial still succeeds with
    its result, its curve and every artifact, and the operator keeps serving."""
    doc = experiment("outage", max_trials=4, parallel=2, epochs=30)
    doc["spec"]["searchSpace"]["hyperparameters"]["batchSize"] = {"values": [8]}  # a few seconds a trial
    kube.kubectl("apply", "-n", channels.namespace, "-f", "-", input=yaml.safe_dump(doc))
    ns = channels.namespace

    def running() -> bool:
        items = trials_of(kube, ns, "outage").values()
        return any(t.get("status", {}).get("phase") == "Running" for t in items)

    wait_for(running, 120, "a running trial", lambda: diagnostics(kube, ns, channels.operator))
    channels.pushgateway.stop()
    channels.s3.stop()
    time.sleep(60)
    channels.s3.start()
    done = run(kube, channels, doc, timeout=600)
    trials = trials_of(kube, ns, "outage")
    assert done["status"]["phase"] == "Succeeded", [t.get("status") for t in trials.values()]
    assert sorted(trials) == [f"outage-{i}" for i in range(4)]
    for name, trial in trials.items():
        status = trial["status"]
        assert status["phase"] == "Succeeded" and status["epochs"] == 30, (name, status)
        assert (
            len(status["curve"]) == 30
            and status["artifacts"] == f"s3://{BUCKET}/{channels.prefix('outage', name)}"
        )
        result = json.loads(channels.read(channels.prefix("outage", name) + "result.json"))
        assert (
            result["phase"] == "Succeeded" and result["metrics"]["accuracy"] == status["metrics"]["accuracy"]
        )
        stored = {k.rsplit("/", 1)[-1] for k in channels.objects(channels.prefix("outage", name))}
        assert {"model.pt2", "model.pt", "checkpoint.pt", "metrics.jsonl", "architecture.json"} <= stored
    assert channels.operator.process is not None and channels.operator.process.poll() is None
