"""kopf entry points: each one only finds the experiment and hands it to the Reconciler."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Mapping
from typing import Any, cast

import kopf
from kubernetes.client.exceptions import ApiException

from kubenas.api.experiment import GROUP, VERSION
from kubenas.k8s.client import KubeApi
from kubenas.k8s.defaults import OperatorDefaults
from kubenas.k8s.labels import EXPERIMENT_LABEL
from kubenas.k8s.reconcile import Reconciler
from kubenas.metrics import operator as metrics

log = logging.getLogger(__name__)
EXPERIMENTS = (GROUP, VERSION, "nasexperiments")
FINISHED = ("Succeeded", "Failed")


class Handlers:
    """Handlers bound to one API client; reconciles of one experiment never overlap."""

    def __init__(self, api: KubeApi, defaults: OperatorDefaults | None = None):
        self.api = api
        self.defaults = defaults or OperatorDefaults()
        self._locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)

    def reconcile(self, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        with self._locks[meta["namespace"], meta["name"]]:
            fresh = self.api.get_experiment(
                meta["namespace"], meta["name"]
            )  # newest status, not kopf's cached body
            if fresh is None or fresh["metadata"].get("deletionTimestamp"):
                return

            def event(type_: str, reason: str, message: str) -> None:
                kopf.event(cast(kopf.Body, fresh), type=type_, reason=reason, message=message[:1000])

            try:
                Reconciler(self.api, event, self.defaults).reconcile(fresh)
            except ApiException as error:
                metrics.error("ApiError")
                raise kopf.TemporaryError(f"API error {error.status}: {error.reason}", delay=3) from error

    def on_experiment(self, body: kopf.Body, **_: Any) -> None:
        self.reconcile(body)

    def on_job(self, namespace: str | None, labels: Mapping[str, str], **_: Any) -> None:
        if namespace is None:
            return
        experiment = self.api.get_experiment(namespace, labels[EXPERIMENT_LABEL])
        if experiment is not None and experiment.get("status", {}).get("phase") not in FINISHED:
            self.reconcile(experiment)


def _unfinished(status: Mapping[str, Any], **_: Any) -> bool:
    return status.get("phase") not in FINISHED


def register(
    registry: kopf.OperatorRegistry, api: KubeApi, interval: float, defaults: OperatorDefaults | None = None
) -> Handlers:
    handlers = Handlers(api, defaults)
    kopf.on.resume(*EXPERIMENTS, registry=registry)(handlers.on_experiment)
    kopf.on.create(*EXPERIMENTS, registry=registry)(handlers.on_experiment)
    kopf.on.update(*EXPERIMENTS, field="spec", registry=registry)(handlers.on_experiment)
    kopf.timer(*EXPERIMENTS, interval=interval, when=_unfinished, registry=registry)(handlers.on_experiment)
    kopf.on.event("batch", "v1", "jobs", labels={EXPERIMENT_LABEL: kopf.PRESENT}, registry=registry)(
        handlers.on_job
    )
    return handlers
