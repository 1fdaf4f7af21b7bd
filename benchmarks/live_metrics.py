"""Live metrics and artifacts on the real control plane: how fast epochs reach the operator, what its own
/metrics say during an experiment, and how many bytes each trial uploads.

Starts what the cluster tests start (kube-apiserver, etcd, controller-manager and scheduler built from Go,
the local node agent that runs pods as processes) plus a Pushgateway, Prometheus (1 s scrapes) and an
S3-compatible server (moto), then runs one experiment of `--trials` digits trials (2 at a time, `--epochs`
epochs, batch 16) with metrics and storage from the operator's defaults (reconcile interval 1 s). While it
runs, this script polls Prometheus with the operator's own query every 0.2 s and records when each epoch
first becomes visible there, against the end time its trainer pushed. At the end it reads the operator's
histograms through Prometheus (histogram_quantile: interpolated within buckets) and each trial's
uploadedBytes.

    PYTHONPATH=operator:trainer:. python -m benchmarks.live_metrics --trials 10 --epochs 5
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

import yaml
from kubenas.metrics.live import read_epochs

from tests.cluster.conftest import ROOT, get_json
from tests.cluster.fixtures import Cluster, cluster
from tests.cluster.operator_process import OperatorProcess
from tests.services.net import free_port
from tests.services.prometheus import Prometheus, ScrapeJob
from tests.services.pushgateway import Pushgateway
from tests.services.s3 import CREDENTIALS, S3Server

NAMESPACE, NAME = "bench", "live"


def manifest(trials: int, epochs: int) -> dict[str, Any]:
    doc = copy.deepcopy(yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text()))
    doc["metadata"] = {"name": NAME}
    doc["spec"]["objective"] = {"metric": "accuracy"}
    doc["spec"]["budget"] = {"maxTrials": trials, "parallelTrials": 2, "maxFailedTrials": 0}
    doc["spec"]["training"]["epochs"] = epochs
    doc["spec"]["searchSpace"]["hyperparameters"]["batchSize"] = {"values": [16]}
    threads = [{"name": "KUBENAS_NUM_THREADS", "value": "1"}, {"name": "OMP_NUM_THREADS", "value": "1"}]
    doc["spec"]["trialTemplate"]["env"] = threads
    return doc


def quantile(prometheus: Prometheus, q: float, histogram: str) -> float:
    rows = prometheus.query(f"histogram_quantile({q}, sum by (le) ({histogram}_bucket))")
    return float(rows[0]["value"][1]) if rows else float("nan")


def watch(kube: Cluster, prometheus: Prometheus) -> tuple[str, float, list[float]]:
    """Poll until the experiment ends: (its phase, wall seconds, each epoch's delay to visibility)."""
    started = time.time()
    first_seen: dict[tuple[str, int], float] = {}
    ended: dict[tuple[str, int], float] = {}
    while True:
        live = read_epochs(prometheus.url, NAMESPACE, NAME)  # the operator's own query
        now = time.time()
        for trial, epochs in live.ended.items():
            for epoch, at in epochs.items():
                first_seen.setdefault((trial, epoch), now)
                ended[trial, epoch] = at
        phase = get_json(kube, "nasx", NAME, "-n", NAMESPACE).get("status", {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            return phase, time.time() - started, [first_seen[k] - ended[k] for k in first_seen]
        time.sleep(0.2)


def report(kube: Cluster, prometheus: Prometheus, phase: str, wall: float, delays: list[float]) -> None:
    trials = get_json(kube, "nastrials", "-n", NAMESPACE)["items"]
    uploaded = [t["status"]["metrics"].get("uploadedBytes", float("nan")) for t in trials]
    print(f"experiment {phase} in {wall:.0f} s, {len(trials)} trials\n")
    print("| measure | median | max | n |\n|---|---|---|---|")
    visible = f"{median(delays):.2f} | {max(delays):.2f} | {len(delays)}"
    print(f"| epoch ended -> visible in Prometheus, s | {visible} |")
    print(f"| bytes uploaded per trial | {median(uploaded):,.0f} | {max(uploaded):,.0f} | {len(uploaded)} |")
    print("\noperator /metrics (histogram_quantile over the run, interpolated within buckets):\n")
    print("| histogram | p50 | p99 | count |\n|---|---|---|---|")
    for histogram in ("reconcile_duration", "next_job_delay", "metrics_delay", "strategy_ask_duration"):
        name = f"kubenas_{histogram}_seconds"
        count = prometheus.query(f"sum({name}_count)")
        n = int(float(count[0]["value"][1])) if count else 0
        p50, p99 = quantile(prometheus, 0.5, name), quantile(prometheus, 0.99, name)
        print(f"| {name} | {p50:.3f} | {p99:.3f} | {n} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="kubenas-live-"))
    metrics_port = free_port()
    with cluster() as kube, Pushgateway(work / "pushgateway") as gateway, S3Server() as s3:
        s3.client().create_bucket(Bucket="kubenas")
        kube.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/nasexperiments.kubenas.dev")
        kube.kubectl("create", "namespace", NAMESPACE)
        secret = [f"--from-literal={k}={v}" for k, v in CREDENTIALS.items()]
        kube.kubectl("create", "secret", "generic", "s3", "-n", NAMESPACE, *secret)
        jobs = [
            ScrapeJob("pushgateway", f"127.0.0.1:{gateway.port}", honor_labels=True),
            ScrapeJob("kubenas-operator", f"127.0.0.1:{metrics_port}", honor_labels=True),
        ]
        with Prometheus(work / "prometheus", jobs) as prometheus:
            flags = [
                *("--metrics-port", str(metrics_port), "--pushgateway", gateway.url),
                *("--prometheus", prometheus.url, "--storage-bucket", "kubenas"),
                *("--storage-endpoint", s3.endpoint, "--storage-secret", "s3"),
            ]
            with OperatorProcess(kube.kubeconfig, NAMESPACE, work / "operator.log", flags, env=CREDENTIALS):
                time.sleep(8)  # the namespace's default ServiceAccount, and a first scrape
                doc = yaml.safe_dump(manifest(args.trials, args.epochs))
                kube.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=doc)
                phase, wall, delays = watch(kube, prometheus)
                time.sleep(3)  # a last scrape of the operator
                report(kube, prometheus, phase, wall, delays)


if __name__ == "__main__":
    main()
