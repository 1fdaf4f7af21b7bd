"""The operator's own metrics, served on /metrics (`kubenas operator --metrics-port`).

Module-level collectors (prometheus-client's default registry) and the few helpers that feed them.
The delay histograms need a little memory between passes, kept here: when each segment ended (until
the next Job takes its slot) and the newest epoch seen of each running trial.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from kubenas.api.status import NASExperimentStatus

DELAY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)

RECONCILE = Histogram(
    "kubenas_reconcile_duration_seconds", "One reconcile pass of an experiment.", buckets=DELAY_BUCKETS
)
TRIALS = Gauge("kubenas_experiment_trials", "Trials by phase.", ["namespace", "experiment", "phase"])
BEST = Gauge(
    "kubenas_experiment_best_objective", "The best objective so far.", ["namespace", "experiment", "metric"]
)
OBJECTIVE = Gauge(
    "kubenas_experiment_objective",
    "1 for the experiment's objective metric (a label), to pick it among the trials' metrics.",
    ["namespace", "experiment", "metric"],
)
JOBS = Counter("kubenas_jobs_created_total", "Trial Jobs created (one per segment).")
ASK = Histogram(
    "kubenas_strategy_ask_duration_seconds",
    "How long a strategy took to propose trials.",
    ["strategy"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)
ERRORS = Counter("kubenas_errors_total", "Errors by reason.", ["reason"])
ERROR_REASONS = ("InvalidSpec", "ApiError", "StrategyFailure", "PrometheusUnreachable", "StorageUnreachable")
for _reason in ERROR_REASONS:  # every series exists from the start (at 0), as Prometheus advises
    ERRORS.labels(_reason)
NEXT_JOB = Histogram(
    "kubenas_next_job_delay_seconds",
    "From a trial's segment ending (its Job's completion) to the next Job of the experiment being created.",
    buckets=DELAY_BUCKETS,
)
METRICS_DELAY = Histogram(
    "kubenas_metrics_delay_seconds",
    "From a trial's epoch ending to the operator first seeing its metrics.",
    buckets=DELAY_BUCKETS,
)

_freed: dict[tuple[str, str], deque[tuple[str, float]]] = {}  # experiment -> (Job, end time) of free slots
_seen_epochs: dict[tuple[str, str, str], int] = {}  # trial -> the newest epoch seen


def error(reason: str) -> None:
    """Count an error; `reason` is one of ERROR_REASONS."""
    ERRORS.labels(reason).inc()


def segment_ended(namespace: str, experiment: str, job: str, ended_at: float) -> None:
    """A segment's Job ended at `ended_at` (unix time): its slot is free for the next Job."""
    queue = _freed.setdefault((namespace, experiment), deque(maxlen=10000))
    if all(ref != job for ref, _ in queue):
        queue.append((job, ended_at))


def job_created(namespace: str, experiment: str) -> None:
    """A new Job was created: it takes the oldest free slot, and the delay since that slot freed up."""
    JOBS.inc()
    queue = _freed.get((namespace, experiment))
    if queue:
        _, ended_at = queue.popleft()
        NEXT_JOB.observe(max(0.0, time.time() - ended_at))


def saw_epochs(namespace: str, experiment: str, trial: str, ended: Mapping[int, float]) -> None:
    """The operator sees these epochs of a trial (epoch -> when it ended): time the new ones."""
    if not ended:
        return
    key = (namespace, experiment, trial)
    newest = _seen_epochs.get(key, 0)
    now = time.time()
    for epoch, at in ended.items():
        if epoch > newest:
            METRICS_DELAY.observe(max(0.0, now - at))
    _seen_epochs[key] = max(newest, *ended)


def experiment_status(namespace: str, experiment: str, metric: str, status: NASExperimentStatus) -> None:
    OBJECTIVE.labels(namespace, experiment, metric).set(1)
    counts = status.trials
    for phase in ("pending", "running", "paused", "succeeded", "failed", "stopped"):
        TRIALS.labels(namespace, experiment, phase.capitalize()).set(getattr(counts, phase))
    if status.best is not None:
        BEST.labels(namespace, experiment, metric).set(status.best.objective_value)


def timed(strategy_name: str, propose: Callable[..., Any]) -> Callable[..., Any]:
    """`propose` timed into kubenas_strategy_ask_duration_seconds."""

    def timed_propose(*args: Any, **kwargs: Any) -> Any:
        with ASK.labels(strategy_name).time():
            return propose(*args, **kwargs)

    return timed_propose
