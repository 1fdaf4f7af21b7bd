"""Trials' per-epoch metrics as the operator reads them back from Prometheus.

Each trial pushes its whole history after every epoch to a Pushgateway (kubenas_trainer.report), which
Prometheus scrapes with honor_labels; one instant query per experiment returns every running trial's
epochs, so a scrape that missed an epoch loses nothing. When a trial's segment ends, the operator
deletes its Pushgateway group (`forget`): Prometheus then marks its series stale, and the next query
returns only trials that are still running (an ended trial's curve lives in its NASTrial status).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

JOB = "kubenas-trial"  # the Pushgateway job of every trial's group
METRIC = "kubenas_trial_metric"  # {metric, epoch}: every per-epoch metric of every epoch so far
EPOCH_END = "kubenas_trial_epoch_end_timestamp_seconds"  # {epoch}: when each epoch ended (unix time)
TIMEOUT_SECONDS = 5.0


class MetricsUnavailable(Exception):
    """Prometheus could not be read; the message says why."""


def trial_labels(namespace: str, experiment: str, trial: str) -> dict[str, str]:
    """A trial's grouping key in the Pushgateway and its labels in Prometheus."""
    return {"namespace": namespace, "experiment": experiment, "trial": trial}


@dataclass(frozen=True)
class LiveEpochs:
    """Per trial: its metrics after each epoch (rows like metrics.jsonl's), and when each epoch ended."""

    rows: Mapping[str, tuple[dict[str, float], ...]] = field(default_factory=dict)
    ended: Mapping[str, Mapping[int, float]] = field(default_factory=dict)


def _query(prometheus: str, promql: str) -> list[dict[str, object]]:
    url = f"{prometheus.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            body = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise MetricsUnavailable(f"Prometheus at {prometheus} did not answer: {error}") from error
    if body.get("status") != "success":
        raise MetricsUnavailable(f"Prometheus at {prometheus} refused {promql!r}: {body.get('error')}")
    result: list[dict[str, object]] = body["data"]["result"]
    return result


def read_epochs(prometheus: str, namespace: str, experiment: str) -> LiveEpochs:
    """Every pushed epoch of the experiment's trials (MetricsUnavailable if Prometheus cannot say)."""
    selector = f'{{namespace="{namespace}",experiment="{experiment}"}}'
    by_trial: dict[str, dict[int, dict[str, float]]] = {}
    for sample in _query(prometheus, METRIC + selector):
        labels, value = _labels_value(sample)
        epoch = int(labels["epoch"])
        by_trial.setdefault(labels["trial"], {}).setdefault(epoch, {})[labels["metric"]] = value
    ended: dict[str, dict[int, float]] = {}
    for sample in _query(prometheus, EPOCH_END + selector):
        labels, value = _labels_value(sample)
        ended.setdefault(labels["trial"], {})[int(labels["epoch"])] = value
    rows = {}
    for trial, epochs in by_trial.items():
        # Epochs 1..n without a gap (a continued trial pushes its inherited epochs too).
        count = next((e for e in range(1, len(epochs) + 2) if e not in epochs), 1) - 1
        rows[trial] = tuple({"epoch": float(e), **epochs[e]} for e in range(1, count + 1))
    return LiveEpochs(rows, ended)


def _labels_value(sample: Mapping[str, object]) -> tuple[dict[str, str], float]:
    labels = {str(k): str(v) for k, v in dict(sample["metric"]).items()}  # type: ignore[call-overload]
    value = sample["value"]
    assert isinstance(value, list)
    return labels, float(value[1])


def forget(pushgateway: str, labels: Mapping[str, str]) -> bool:
    """Delete a trial's group from the Pushgateway (its series go stale in Prometheus); False when the
    gateway could not be reached (the group then stays until the next segment of the trial replaces it)."""
    from prometheus_client import delete_from_gateway

    try:
        delete_from_gateway(pushgateway, job=JOB, grouping_key=dict(labels), timeout=TIMEOUT_SECONDS)
    except OSError as error:
        log.warning("could not delete %s from the Pushgateway %s: %s", dict(labels), pushgateway, error)
        return False
    return True
