"""Live metrics: after every epoch the trial's whole history is pushed to a Prometheus Pushgateway.

A push is an HTTP PUT to job `kubenas-trial` with TrialSpec.report.labels as the grouping key (the
operator sends namespace, experiment and trial), replacing the group with these families (the names are a
contract: the operator and the Grafana dashboard query them):

    kubenas_trial_metric{metric, epoch}                   every per-epoch metric (a metrics.jsonl key) of
                                                          every epoch so far, inherited epochs included
    kubenas_trial_epoch_end_timestamp_seconds{epoch}      unix time each epoch ended (epochs inherited from
                                                          a checkpoint that did not record it are left out)
    kubenas_trial_latest{metric}                          the last epoch's value of each metric
    kubenas_trial_epochs                                  epochs completed

Because every push carries the whole history, a scrape or a push that missed an epoch loses nothing.
Non-finite values (a diverging trainLoss) are pushed as they are (NaN, +Inf): they are what happened.
Pushes run in a background thread (only the newest history waits), time out after 2 s and are never
retried: a failure is logged once per streak and the next epoch pushes again. The group is not deleted
at the end; the operator does that after recording the curve.
"""

from __future__ import annotations

import sys
import threading
from typing import Final, Protocol

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from kubenas_trainer.background import Latest
from kubenas_trainer.spec import MetricsReport

JOB: Final = "kubenas-trial"
TRIAL_METRIC: Final = "kubenas_trial_metric"
EPOCH_END: Final = "kubenas_trial_epoch_end_timestamp_seconds"
LATEST: Final = "kubenas_trial_latest"
EPOCHS: Final = "kubenas_trial_epochs"
PUSH_TIMEOUT_SECONDS: Final = 2.0

History = tuple[list[dict[str, float]], dict[int, float]]  # metrics rows with "epoch", end times by epoch


class Progress(Protocol):
    """What the pusher reads of a trial's progress (train.TrainingState)."""

    @property
    def history(self) -> list[dict[str, float]]: ...
    @property
    def ended(self) -> dict[int, float]: ...


def registry(history: list[dict[str, float]], ended: dict[int, float]) -> CollectorRegistry:
    """The families above for a history of metrics.jsonl rows and epoch end times."""
    families = CollectorRegistry()
    metric = Gauge(TRIAL_METRIC, "A per-epoch metric of the trial", ["metric", "epoch"], registry=families)
    end = Gauge(EPOCH_END, "Unix time the epoch ended", ["epoch"], registry=families)
    latest = Gauge(LATEST, "The last epoch's value of a metric", ["metric"], registry=families)
    epochs = Gauge(EPOCHS, "Epochs completed", registry=families)
    for row in history:
        epoch = str(int(row["epoch"]))
        for name, value in row.items():
            if name != "epoch":
                metric.labels(name, epoch).set(value)
        if int(row["epoch"]) in ended:
            end.labels(epoch).set(ended[int(row["epoch"])])
    for name, value in (history[-1] if history else {}).items():
        if name != "epoch":
            latest.labels(name).set(value)
    epochs.set(int(history[-1]["epoch"]) if history else 0)
    return families


class Pusher:
    """Pushes a trial's history after every epoch (a training observer); never raises, never blocks."""

    def __init__(self, report: MetricsReport, timeout: float = PUSH_TIMEOUT_SECONDS) -> None:
        self.report, self.timeout = report, timeout
        self.failing = False
        self.attempts = 0
        self._worker: Latest[History] = Latest("kubenas-push", self._push)

    def started(self, progress: Progress) -> None:
        if progress.history:  # a resumed or started-from trial shows its inherited curve at once
            self.saved(progress)

    def saved(self, progress: Progress) -> None:
        self._worker.submit((list(progress.history), dict(progress.ended)))

    def close(self) -> None:
        """Push what waits (the last epoch), at most a running and a waiting push's timeouts."""
        self._worker.close(handle_waiting=True, timeout=2 * self.timeout + 1)

    def push(self, history: list[dict[str, float]], ended: dict[int, float]) -> bool:
        """One push of the whole history; a failure is logged at the start of a streak."""
        self.attempts += 1
        gateway = self.report.pushgateway
        try:
            families = registry(history, ended)
            push_to_gateway(gateway, JOB, families, grouping_key=self.report.labels, timeout=self.timeout)
        except Exception as error:
            if not self.failing:
                print(
                    f"pushgateway {gateway}: push failed ({type(error).__name__}: {error}); "
                    "training goes on, every epoch pushes the whole history again",
                    file=sys.stderr,
                    flush=True,
                )
            self.failing = True
            return False
        if self.failing:
            print(
                f"pushgateway {gateway}: pushing again ({len(history)} epochs)", file=sys.stderr, flush=True
            )
        self.failing = False
        return True

    def _push(self, state: History, interrupt: threading.Event) -> None:
        self.push(*state)
