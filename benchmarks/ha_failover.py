"""HA failover: two operator replicas on the real control plane; the leader is killed, the other takes over.

Starts what the cluster tests start (kube-apiserver, etcd, controller-manager, scheduler built from Go, the
local node agent), applies the CRDs and one NASExperiment whose stand-in trials sleep for the whole run,
so there is always an unfinished experiment for a new leader to reconcile. Two `kubenas operator`
replicas (default leader election: 15 s lease, 10 s renew deadline, 2 s retry period) run; each round
kills the leader (SIGKILL, or SIGTERM with --signal TERM) at a seeded random moment, and measures:
- kill -> the other replica holds the Lease: this script polls the Lease every 50 ms;
- kill -> its first reconcile pass: the replica's own log line `first reconcile pass` (its JSON log's
  time; same machine, same clock).
The killed replica is then started again (the same identity, as a restarted container) and stands by.

    PYTHONPATH=operator:trainer:. .venv/bin/python -m benchmarks.ha_failover --kills 5
    PYTHONPATH=operator:trainer:. .venv/bin/python -m benchmarks.ha_failover --kills 3 --signal TERM
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from statistics import median

import yaml

from tests.cluster.conftest import ROOT
from tests.cluster.fixtures import Cluster, cluster
from tests.cluster.operator_process import OperatorProcess
from tests.cluster.test_ha import holder, stand_in_experiment, stand_in_path

NAMESPACE = "ha-bench"
FIRST_PASS = "first reconcile pass"


class Replica(OperatorProcess):
    """An OperatorProcess that remembers when it was last started (time.time())."""

    started = 0.0

    def start(self) -> None:
        self.started = time.time()
        super().start()


def wait(predicate: Callable[[], object], timeout: float, what: str, period: float = 0.05) -> float:
    """Poll until predicate() is true; the time.time() it first was."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.time()
        time.sleep(period)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def log_time(log: Path, message: str, after: float) -> float | None:
    """The time of the first JSON log line containing `message` logged after `after` (time.time())."""
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        at = datetime.fromisoformat(record["time"]).timestamp()
        if message in record["message"] and at >= after:
            return at
    return None


def round_(
    kube: Cluster, leader: Replica, standby: Replica, sig: int, rng: random.Random
) -> tuple[float, float]:
    """Kill the leader; (kill -> the standby holds the Lease, kill -> its first pass), in seconds."""
    since = standby.started
    wait(lambda: log_time(standby.log, "standing by", since) is not None, 60, "the standby to stand by", 0.2)
    time.sleep(rng.uniform(0.0, 2.0))  # anywhere between two renewals
    assert leader.process is not None
    killed = time.time()
    os.killpg(leader.process.pid, sig)
    leader.process.wait()
    held = wait(lambda: holder(kube, NAMESPACE) == standby.identity, 120, "the standby to hold the Lease")
    wait(
        lambda: log_time(standby.log, FIRST_PASS, killed) is not None, 60, "the new leader's first pass", 0.2
    )
    first_pass = log_time(standby.log, FIRST_PASS, killed)
    assert first_pass is not None
    leader.start()  # back, as the standby
    return held - killed, first_pass - killed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--signal", choices=("KILL", "TERM"), default="KILL")
    parser.add_argument("--seed", type=int, default=20261203)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    sig = signal.SIGKILL if args.signal == "KILL" else signal.SIGTERM
    work = Path(tempfile.mkdtemp(prefix="kubenas-ha-"))
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    rows: list[tuple[float, float]] = []
    with cluster() as kube:
        kube.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/nasexperiments.kubenas.dev")
        kube.kubectl("create", "namespace", NAMESPACE)
        wait(
            lambda: kube.kubectl("get", "sa", "default", "-n", NAMESPACE, check=False).returncode == 0,
            30,
            "the namespace's default ServiceAccount",
        )
        replicas = [
            Replica(kube.kubeconfig, NAMESPACE, work / f"replica-{i}.log", ["--log-format", "json"])
            for i in range(2)
        ]
        try:
            replicas[0].start()
            wait(lambda: holder(kube, NAMESPACE) == replicas[0].identity, 60, "the first replica to lead")
            replicas[1].start()
            doc = stand_in_experiment("ha", max_trials=2, parallel=2, seconds=3600, path=stand_in_path(work))
            kube.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump(doc))
            wait(lambda: log_time(replicas[0].log, FIRST_PASS, 0) is not None, 60, "the first pass", 0.2)
            for n in range(args.kills):
                current = holder(kube, NAMESPACE)
                leader = next(r for r in replicas if r.identity == current)
                standby = next(r for r in replicas if r is not leader)
                lease, first = round_(kube, leader, standby, sig, rng)
                rows.append((lease, first))
                print(
                    f"kill {n + 1}: lease held after {lease:.2f} s, first pass after {first:.2f} s",
                    flush=True,
                )
        finally:
            for replica in replicas:
                replica.stop()
    print(table(rows, args.signal))


def table(rows: list[tuple[float, float]], sig: str) -> str:
    def values(column: list[float]) -> str:
        return f"{median(column):.2f} s | {', '.join(f'{v:.2f}' for v in column)}"

    return "\n".join(
        [
            f"| SIG{sig} of the leader ({len(rows)}x) | median | all (s) |",
            "|---|---|---|",
            f"| kill -> the other replica holds the Lease | {values([r[0] for r in rows])} |",
            f"| kill -> its first reconcile pass | {values([r[1] for r in rows])} |",
        ]
    )


if __name__ == "__main__":
    main()
