"""Operator scale: N experiments x P parallel trials on ONE operator, on the real control plane.

Starts what the cluster tests start (kube-apiserver, etcd, controller-manager and scheduler built from Go,
the local node agent that runs pods as processes), applies the CRDs and N NASExperiments (random strategy,
maxTrials T, parallelTrials P) to one namespace, then starts `kubenas operator --metrics-port` (reconcile
interval 1 s, as the cluster tests run it) and waits until every experiment has finished.

Trials are a STAND-IN, not training: tests/cluster/stand_in_trainer.py, put on the node agent's PATH as
`kubenas-trainer`, run with `python -S` (standard library only, ~10 ms of CPU). It writes a valid TrialResult
(phase Succeeded, an accuracy drawn from the trial's name, the spec's epochs) to $KUBENAS_TERMINATION_LOG and
then execs `sleep --seconds` (set in the experiments' trialTemplate env), so 500 running trials are 500
`sleep` processes and the operator, the API server and the controllers are what is measured.

What it measures (printed as a table; several runs side by side when --baseline-rev is given):
- trial done -> next Job: this script watches Jobs itself (a raw watch, sub-second receive times). Per
  experiment, each Job seen Complete frees a slot; each new Job takes the oldest free slot (FIFO, as the
  operator's kubenas_next_job_delay_seconds does, but without completionTime's 1 s truncation);
- the operator's own histograms from its /metrics (kubenas_reconcile_duration_seconds,
  kubenas_next_job_delay_seconds; quantiles interpolated within buckets, as histogram_quantile does);
- API requests: apiserver_request_total (kubectl get --raw /metrics) before the operator starts and after
  the last experiment finished. The operator's share: every request on nasexperiments and nastrials, LIST /
  POST / DELETE of jobs, LIST of pods (the other components watch those), plus the Events kopf posted
  (counted from the Events whose source is kopf); WATCH requests (long-lived streams) are left out;
- the operator's peak RSS (VmHWM) and CPU seconds (/proc/<pid>);
- starvation: the longest any experiment waited for a free slot to be refilled, and operator start -> each
  experiment's first Job (the experiments are applied before the operator starts);
- wall time (operator start -> last experiment finished), trials per second, peak concurrent Jobs.

    PYTHONPATH=operator:trainer:. .venv/bin/python -m benchmarks.operator_scale \\
        --experiments 20 --max-trials 100 --parallel 25 --seconds 150
    # before/after, alternated: also with operator/kubenas/k8s/{handlers,main,client}.py as of HEAD
    PYTHONPATH=operator:trainer:. .venv/bin/python -m benchmarks.operator_scale ... --baseline-rev HEAD
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import yaml
from kubenas.api.experiment import GROUP, VERSION
from kubenas.k8s.labels import EXPERIMENT_LABEL
from kubenas_trainer.spec import TrialResult
from kubernetes import client, config

from tests.cluster.conftest import ROOT
from tests.cluster.fixtures import Cluster, cluster
from tests.cluster.operator_process import OperatorProcess
from tests.services.net import free_port

NAMESPACE = "bench"
STAND_IN = ROOT / "tests" / "cluster" / "stand_in_trainer.py"
# Room for every stand-in pod on the one node (the agent's default allows 110 pods and 4 GPUs).
CAPACITY = {"cpu": "10000", "memory": "64Ti", "pods": "5000", "nvidia.com/gpu": "5000"}
# The files the bottleneck fixes touch: --baseline-rev runs the operator with these as of that revision.
FIXED_FILES = ("handlers.py", "main.py", "client.py")
OPERATOR_RESOURCES = {"nasexperiments", "nastrials"}  # only the operator (and this script's watch) use these


# -- the stand-in and the experiments ------------------------------------------------------------------


def stand_in_bin(work: Path) -> Path:
    """A dir holding `kubenas-trainer`: the stand-in, run with `python -S`. Checked against TrialResult."""
    bin_dir = work / "stand-in-bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "kubenas-trainer"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -S {STAND_IN} "$@"\n')
    shim.chmod(0o755)
    env = {
        **os.environ,
        "KUBENAS_TRIAL_NAME": "check-0",
        "KUBENAS_TRIAL_SPEC": '{"training": {"epochs": 2}}',
        "KUBENAS_STAND_IN_SECONDS": "0",
    }
    env.pop("KUBENAS_TERMINATION_LOG", None)
    out = subprocess.run([str(shim)], env=env, capture_output=True, text=True, check=True).stdout
    TrialResult.model_validate_json(out)  # the stand-in's report is a valid trial result
    return bin_dir


def experiment(name: str, max_trials: int, parallel: int, seconds: float) -> dict[str, Any]:
    """A random search whose candidates never repeat (a continuous learning rate): no result reuse."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "NASExperiment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "objective": {"metric": "accuracy"},
            "searchSpace": {
                "layers": {"count": {"min": 1, "max": 3}, "types": ["dense"], "units": {"values": [32, 64]}},
                "hyperparameters": {"learningRate": {"min": 0.0001, "max": 0.1, "log": True}},
            },
            "strategy": {"name": "random", "seed": sum(map(ord, name))},
            "budget": {"maxTrials": max_trials, "parallelTrials": parallel, "maxFailedTrials": max_trials},
            "training": {"dataset": "digits", "epochs": 2},
            "trialTemplate": {
                "image": "stand-in",  # the node agent ignores images; `kubenas-trainer` is the stand-in
                "resources": {"requests": {"cpu": "10m"}},
                "env": [{"name": "KUBENAS_STAND_IN_SECONDS", "value": f"{seconds:g}"}],
            },
        },
    }


# -- watching Jobs and experiments ---------------------------------------------------------------------


def _lines(response: Any) -> Iterator[bytes]:
    buffer = b""
    for chunk in response.stream(65536, decode_content=True):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        yield from (line for line in lines if line.strip())


def _ended(job: dict[str, Any]) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in job.get("status", {}).get("conditions") or []
    )


@dataclass
class Recorder:
    """Receive times (time.time(), sub-second) of Jobs created and ended, and of experiments finishing."""

    created: dict[str, tuple[str, float]] = field(default_factory=dict)  # Job -> (experiment, seen)
    ended: dict[str, float] = field(default_factory=dict)  # Job -> first seen Complete / Failed
    pod_ended: dict[str, float] = field(default_factory=dict)  # Job -> its pod first seen Succeeded / Failed
    finished: dict[str, float] = field(default_factory=dict)  # experiment -> first seen Succeeded / Failed
    active: int = 0
    peak_active: int = 0
    changes: list[tuple[float, int]] = field(default_factory=list)  # (when, Jobs active from then on)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def on_job(self, kind: str, job: dict[str, Any], at: float) -> None:
        name = job["metadata"]["name"]
        experiment = (job["metadata"].get("labels") or {}).get(EXPERIMENT_LABEL)
        if experiment is None:
            return
        with self.lock:
            if name not in self.created:
                self.created[name] = (experiment, at)
                self.active += 1
                self.peak_active = max(self.peak_active, self.active)
                self.changes.append((at, self.active))
            if (_ended(job) or kind == "DELETED") and name not in self.ended:
                self.ended[name] = at
                self.active -= 1
                self.changes.append((at, self.active))

    def mean_active(self) -> float:
        """Jobs active on average, from the first Job created to the last one ended."""
        if len(self.changes) < 2:
            return math.nan
        area = sum((t1 - t0) * n for (t0, n), (t1, _) in zip(self.changes, self.changes[1:], strict=False))
        return area / (self.changes[-1][0] - self.changes[0][0])

    def on_pod(self, kind: str, pod: dict[str, Any], at: float) -> None:
        job = (pod["metadata"].get("labels") or {}).get("job-name")
        if job and (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            with self.lock:
                self.pod_ended.setdefault(job, at)

    def on_experiment(self, kind: str, obj: dict[str, Any], at: float) -> None:
        if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            with self.lock:
                self.finished.setdefault(obj["metadata"]["name"], at)

    def watch(
        self, list_call: Callable[..., Any], handle: Callable[[str, dict[str, Any], float], None]
    ) -> None:
        version = ""
        while not self.stop.is_set():
            try:
                response = list_call(
                    watch=True,
                    resource_version=version or None,
                    allow_watch_bookmarks=True,
                    timeout_seconds=30,
                    _preload_content=False,
                )
                for line in _lines(response):
                    at = time.time()
                    event = json.loads(line)
                    obj = event["object"]
                    if event["type"] == "ERROR":  # 410 Gone: start over (first-seen times are kept)
                        version = ""
                        break
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        handle(event["type"], obj, at)
            except Exception as error:  # a broken stream: watch again from where it was
                if not self.stop.is_set():
                    print(f"watch failed, again: {error}", file=sys.stderr)
                    time.sleep(0.5)

    def start(self, kubeconfig: Path) -> None:
        api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        batch, core, custom = client.BatchV1Api(api), client.CoreV1Api(api), client.CustomObjectsApi(api)

        def jobs(**kwargs: Any) -> Any:
            return batch.list_namespaced_job(NAMESPACE, **kwargs)

        def pods(**kwargs: Any) -> Any:
            return core.list_namespaced_pod(NAMESPACE, label_selector=EXPERIMENT_LABEL, **kwargs)

        def experiments(**kwargs: Any) -> Any:
            return custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "nasexperiments", **kwargs)

        watches = ((jobs, self.on_job), (pods, self.on_pod), (experiments, self.on_experiment))
        for target, handle in watches:
            threading.Thread(target=self.watch, args=(target, handle), daemon=True).start()


def slot_waits(recorder: Recorder, ended: dict[str, float]) -> dict[str, list[float]]:
    """Per experiment, trial done -> next Job: each ended Job (`ended`: Job -> when) frees a slot, each new
    Job takes the oldest free one."""
    timeline: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
    for name, (experiment, at) in recorder.created.items():
        timeline[experiment].append((at, 1, name))
        if name in ended:
            timeline[experiment].append((ended[name], 0, name))
    out: dict[str, list[float]] = {}
    for experiment, events in timeline.items():
        free: deque[float] = deque()
        waits = out.setdefault(experiment, [])
        for at, is_created, _ in sorted(events):
            if not is_created:
                free.append(at)
            elif free:
                waits.append(at - free.popleft())
    return out


# -- what the operator and the API server say ----------------------------------------------------------

_SAMPLE = re.compile(r"^(\w+)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(text: str, metric: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if line.startswith(metric) and (m := _SAMPLE.match(line)) and m.group(1) == metric:
            out.append((dict(_LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


@dataclass(frozen=True)
class Histogram:
    buckets: tuple[tuple[float, float], ...]  # (le, cumulative count)
    count: float
    total: float

    @classmethod
    def read(cls, text: str, name: str) -> Histogram:
        buckets = sorted((float(labels["le"]), value) for labels, value in samples(text, f"{name}_bucket"))
        count = sum(v for _, v in samples(text, f"{name}_count"))
        total = sum(v for _, v in samples(text, f"{name}_sum"))
        return cls(tuple(buckets), count, total)

    def quantile(self, q: float) -> float:
        """Prometheus' histogram_quantile: linear within the bucket that holds the rank."""
        if not self.count:
            return math.nan
        rank, lower, below = q * self.count, 0.0, 0.0
        for le, cumulative in self.buckets:
            if cumulative >= rank:
                if math.isinf(le):
                    return lower
                return lower + (le - lower) * (rank - below) / max(cumulative - below, 1e-12)
            lower, below = le, cumulative
        return lower


def apiserver_requests(kube: Cluster) -> Counter[tuple[str, str, str]]:
    """apiserver_request_total by (resource, subresource, verb), summed over codes and groups."""
    text = kube.kubectl("get", "--raw", "/metrics", timeout=60).stdout
    out: Counter[tuple[str, str, str]] = Counter()
    for labels, value in samples(text, "apiserver_request_total"):
        out[labels.get("resource", ""), labels.get("subresource", ""), labels.get("verb", "")] += int(value)
    return out


def operator_share(delta: Counter[tuple[str, str, str]]) -> Counter[str]:
    """The requests only the operator makes, by `resource[/subresource] VERB` (WATCH left out)."""
    out: Counter[str] = Counter()
    for (resource, subresource, verb), n in delta.items():
        mine = (
            resource in OPERATOR_RESOURCES
            or (resource == "jobs" and not subresource and verb in ("LIST", "POST", "DELETE"))
            or (resource == "pods" and not subresource and verb == "LIST")
        )
        if mine and verb != "WATCH" and n:
            out[f"{resource}{'/' + subresource if subresource else ''} {verb}"] += int(n)
    return out


def kopf_events(kube: Cluster) -> Counter[str]:
    """The Events the operator posted (through kopf), by reason."""
    events = json.loads(kube.kubectl("get", "events", "-n", NAMESPACE, "-o", "json", timeout=120).stdout)
    return Counter(e["reason"] for e in events["items"] if (e.get("source") or {}).get("component") == "kopf")


def proc_stats(pid: int) -> tuple[float, float]:
    """(peak RSS in MB, CPU seconds) of a live process."""
    status = Path(f"/proc/{pid}/status").read_text()
    hwm = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return hwm / 1024, cpu


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        return str(response.read().decode())


# -- one run -------------------------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    experiments: int
    trials: int = 0  # Jobs that ended
    failed_experiments: int = 0
    peak_active: int = 0
    mean_active: float = math.nan
    wall: float = math.nan
    waits: list[float] = field(default_factory=list)  # Job seen Complete -> next Job
    e2e_waits: list[float] = field(default_factory=list)  # its pod seen Succeeded -> next Job
    job_lag: list[float] = field(default_factory=list)  # pod seen Succeeded -> Job seen Complete
    events: Counter[str] = field(default_factory=Counter)  # the operator's Events by reason
    worst_wait: tuple[str, float] = ("", math.nan)  # the experiment that waited longest for a slot
    first_job: tuple[str, float] = ("", math.nan)  # the experiment whose first Job came last
    reconcile: Histogram | None = None
    next_job: Histogram | None = None
    operator_requests: Counter[str] = field(default_factory=Counter)
    all_requests: float = 0.0
    rss_mb: float = math.nan
    cpu_s: float = math.nan
    timed_out: bool = False


def operator_src(work: Path, rev: str | None) -> Path:
    """A snapshot of the working tree's operator package, with FIXED_FILES as of `rev` if given: runs of
    an hour see the same code, and before and after differ in those files only."""
    dest = work / f"operator-{rev or 'working-tree'}"
    if not dest.exists():
        shutil.copytree(
            ROOT / "operator" / "kubenas", dest / "kubenas", ignore=shutil.ignore_patterns("__pycache__")
        )
        for name in FIXED_FILES if rev else ():
            path = f"operator/kubenas/k8s/{name}"
            text = subprocess.run(
                ["git", "-C", str(ROOT), "show", f"{rev}:{path}"], capture_output=True, text=True, check=True
            ).stdout
            (dest / "kubenas" / "k8s" / name).write_text(text)
    return dest


def run(args: argparse.Namespace, label: str, src: Path, work: Path) -> Result:
    work.mkdir(parents=True, exist_ok=True)
    bins = stand_in_bin(work)
    path = os.pathsep.join([str(bins), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    names = [f"exp{i:02d}" for i in range(args.experiments)]
    result = Result(label, args.experiments)
    with cluster(capacity=CAPACITY, env={"PATH": path}) as kube:
        if kube.agent is None:
            raise SystemExit("the stand-in runs on the local node agent: unset KUBENAS_TEST_KUBECONFIG")
        kube.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/nasexperiments.kubenas.dev")
        kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/nastrials.kubenas.dev")
        kube.kubectl("create", "namespace", NAMESPACE)
        deadline = time.monotonic() + 60  # pods need the namespace's default ServiceAccount
        while kube.kubectl("get", "serviceaccount", "default", "-n", NAMESPACE, check=False).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError("the default ServiceAccount never appeared")
            time.sleep(0.2)
        docs = [experiment(n, args.max_trials, args.parallel, args.seconds) for n in names]
        kube.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs), timeout=300)
        recorder = Recorder()
        recorder.start(kube.kubeconfig)
        time.sleep(2)  # the watches are up
        before = apiserver_requests(kube)
        metrics_port = free_port()
        env = {"PYTHONPATH": os.pathsep.join([str(src), *sys.path])}  # this copy of kubenas first
        flags = ["--metrics-port", str(metrics_port)]
        operator = OperatorProcess(kube.kubeconfig, NAMESPACE, work / "operator.log", flags, env=env)
        started = time.time()
        operator.start()
        assert operator.process is not None
        deadline = time.monotonic() + args.timeout
        try:
            while len(recorder.finished) < len(names):
                if operator.process.poll() is not None:
                    raise RuntimeError(f"the operator exited\n{operator.tail()}")
                if time.monotonic() > deadline:
                    result.timed_out = True
                    break
                time.sleep(1)
            ended = max(recorder.finished.values(), default=time.time())
            text = scrape(metrics_port)
            result.rss_mb, result.cpu_s = proc_stats(operator.process.pid)
        finally:
            operator.stop()
            recorder.stop.set()
        after = apiserver_requests(kube)
        result.wall = ended - started
        delta = after - before
        result.operator_requests = operator_share(delta)
        result.events = kopf_events(kube)
        result.operator_requests["events POST (kopf)"] = sum(result.events.values())
        result.all_requests = sum(n for (_, _, verb), n in delta.items() if verb != "WATCH")
        phases = json.loads(kube.kubectl("get", "nasx", "-n", NAMESPACE, "-o", "json").stdout)["items"]
        result.failed_experiments = sum(e.get("status", {}).get("phase") != "Succeeded" for e in phases)
    result.reconcile = Histogram.read(text, "kubenas_reconcile_duration_seconds")
    result.next_job = Histogram.read(text, "kubenas_next_job_delay_seconds")
    result.trials = len(recorder.ended)
    result.peak_active = recorder.peak_active
    result.mean_active = recorder.mean_active()
    per_experiment = slot_waits(recorder, recorder.ended)
    result.waits = [w for waits in per_experiment.values() for w in waits]
    pod_ended = {**recorder.ended, **recorder.pod_ended}
    result.e2e_waits = [w for waits in slot_waits(recorder, pod_ended).values() for w in waits]
    result.job_lag = [
        at - recorder.pod_ended[job] for job, at in recorder.ended.items() if job in recorder.pod_ended
    ]
    result.worst_wait = max(((e, max(w)) for e, w in per_experiment.items() if w), key=lambda x: x[1])
    firsts: dict[str, float] = {}
    for experiment_name, at in recorder.created.values():
        firsts[experiment_name] = min(at, firsts.get(experiment_name, math.inf))
    result.first_job = max(((e, at - started) for e, at in firsts.items()), key=lambda x: x[1])
    return result


# -- the table -----------------------------------------------------------------------------------------


def quantile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{median(values):.2f} / {quantile(values, 0.99):.2f} / {max(values):.2f} (n={len(values)})"


def rows(r: Result) -> list[tuple[str, str]]:
    reconcile, next_job = r.reconcile, r.next_job
    assert reconcile is not None and next_job is not None
    mine = sum(r.operator_requests.values())
    per_trial = max(r.trials, 1)
    return [
        ("trials (Jobs ended) / experiments not Succeeded", f"{r.trials} / {r.failed_experiments}"),
        ("concurrent trials (Jobs active): peak / mean", f"{r.peak_active} / {r.mean_active:.0f}"),
        ("wall, operator start -> last experiment done, s", f"{r.wall:.0f}" + (" (timed out)" * r.timed_out)),
        ("trials / s", f"{r.trials / r.wall:.2f}"),
        ("trial done (Job Complete) -> next Job (watch), p50 / p99 / max, s", spread(r.waits)),
        ("trial's pod done -> next Job (watch), p50 / p99 / max, s", spread(r.e2e_waits)),
        ("  of which: pod done -> Job Complete (Job controller), p50 / p99 / max, s", spread(r.job_lag)),
        (
            "kubenas_next_job_delay_seconds, p50 / p99, s",
            f"{next_job.quantile(0.5):.2f} / {next_job.quantile(0.99):.2f} (n={next_job.count:.0f})",
        ),
        (
            "kubenas_reconcile_duration_seconds, p50 / p99 / mean, s",
            f"{reconcile.quantile(0.5):.3f} / {reconcile.quantile(0.99):.3f} / "
            f"{reconcile.total / max(reconcile.count, 1):.3f}",
        ),
        ("reconcile passes (per trial)", f"{reconcile.count:.0f} ({reconcile.count / per_trial:.1f})"),
        (
            "API requests per trial, operator (all components)",
            f"{mine / per_trial:.1f} ({r.all_requests / per_trial:.1f})",
        ),
        ("operator peak RSS, MB", f"{r.rss_mb:.0f}"),
        ("operator CPU, s (ms per trial)", f"{r.cpu_s:.0f} ({1000 * r.cpu_s / per_trial:.0f})"),
        (
            "starvation: longest wait for a freed slot, s (experiment)",
            f"{r.worst_wait[1]:.2f} ({r.worst_wait[0]})",
        ),
        (
            "starvation: operator start -> last first Job, s (experiment)",
            f"{r.first_job[1]:.2f} ({r.first_job[0]})",
        ),
    ]


def table(results: list[Result]) -> str:
    lines = [
        "| measure | " + " | ".join(r.label for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]
    columns = [rows(r) for r in results]
    for i, (measure, _) in enumerate(columns[0]):
        lines.append(f"| {measure} | " + " | ".join(c[i][1] for c in columns) + " |")
    return "\n".join(lines)


def requests_table(results: list[Result]) -> str:
    keys = sorted({k for r in results for k in r.operator_requests})
    lines = ["| operator requests per trial | " + " | ".join(r.label for r in results) + " |"]
    lines.append("|---|" + "---|" * len(results))
    for key in keys:
        cells = [f"{r.operator_requests[key] / max(r.trials, 1):.2f}" for r in results]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def events_table(results: list[Result]) -> str:
    reasons = sorted({k for r in results for k in r.events})
    lines = ["| operator Events | " + " | ".join(r.label for r in results) + " |"]
    lines.append("|---|" + "---|" * len(results))
    lines += [f"| {k} | " + " | ".join(str(r.events[k]) for r in results) + " |" for k in reasons]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--experiments", type=int, default=20)
    parser.add_argument("--max-trials", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=25)
    parser.add_argument("--seconds", type=float, default=150, help="how long each stand-in trial sleeps")
    parser.add_argument("--timeout", type=float, default=3600, help="give up on a run after this long")
    parser.add_argument(
        "--baseline-rev",
        help="also run the operator with operator/kubenas/k8s/{handlers,main,client}.py as of this revision",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each version, alternated")
    parser.add_argument(
        "--only-baseline", action="store_true", help="with --baseline-rev: skip the working tree"
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="kubenas-scale-"))
    versions: list[tuple[str, Path]] = []
    if args.baseline_rev:
        versions.append((f"before ({args.baseline_rev})", operator_src(work, args.baseline_rev)))
    if not args.only_baseline:
        versions.append(("after" if args.baseline_rev else "working tree", operator_src(work, None)))
    print(
        f"{args.experiments} experiments x maxTrials {args.max_trials} x parallelTrials {args.parallel}; "
        f"stand-in trials (python -S, then sleep {args.seconds:g} s); work dir {work}",
        flush=True,
    )
    results: list[Result] = []
    for i in range(args.repeat):
        for label, src in versions:
            name = f"{label} #{i + 1}" if args.repeat > 1 else label
            result = run(args, name, src, work / f"run-{len(results)}")
            results.append(result)
            print(f"\n{table([result])}\n", flush=True)
    print(f"\n{table(results)}\n\n{requests_table(results)}\n\n{events_table(results)}")


if __name__ == "__main__":
    main()
