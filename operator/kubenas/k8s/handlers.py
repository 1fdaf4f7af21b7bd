"""kopf entry points: each one only asks for a pass of an experiment; a few worker threads run the passes.

Requests coalesce as in client-go's workqueue: an experiment is queued at most once and never in two
passes at a time; asked for again during its pass, it is queued again after it. A burst of Job events
costs one pass, and experiments take turns (first in, first out), so none starves. Two lanes: passes
something happened for (a Job ended or vanished, the experiment was created, changed or resumed) go
before the timer's routine ones, and routine passes take at most ROUTINE_WORKERS workers, so an urgent
pass never waits for a busy cluster's routine ones; a routine pass is dropped when the experiment had a
pass less than half an interval ago. A pass that hits an API error is retried after RETRY_DELAY.

With leader election (kubenas.k8s.leader) a pass starts only while this replica holds the Lease (the
`leading` gate), and a graceful stop lets the passes running finish before the Lease is released.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import kopf
from kubernetes.client.exceptions import ApiException

from kubenas.api.experiment import GROUP, VERSION
from kubenas.k8s.client import KubeApi
from kubenas.k8s.defaults import OperatorDefaults
from kubenas.k8s.labels import EXPERIMENT_LABEL
from kubenas.k8s.observe import job_ended
from kubenas.k8s.reconcile import Reconciler
from kubenas.metrics import operator as metrics

log = logging.getLogger(__name__)
EXPERIMENTS = (GROUP, VERSION, "nasexperiments")
FINISHED = ("Succeeded", "Failed")
WORKERS = 8  # passes at a time, across experiments (one per experiment)
ROUTINE_WORKERS = 2  # of which routine passes may take at most this many
RETRY_DELAY = 3.0  # seconds before a pass that hit an API error is tried again
ERROR_DELAY = 30.0  # ... and one that raised anything else

Key = tuple[str, str]  # (namespace, name) of an experiment


@dataclass(frozen=True)
class Request:
    urgent: bool  # something happened: before routine passes
    forced: bool  # created, changed or resumed: a pass even if the experiment has finished

    def __or__(self, other: Request) -> Request:
        return Request(self.urgent or other.urgent, self.forced or other.forced)


class PassQueue:
    """Experiments waiting for a pass (see the module doc); `run(key, request)` is one pass."""

    def __init__(self, run: Any, workers: int = WORKERS, interval: float = 1.0) -> None:
        self._run = run
        self._workers = workers
        self._interval = interval
        self._cond = threading.Condition()
        self._queued: dict[Key, Request] = {}
        self._lanes: tuple[deque[Key], deque[Key]] = (deque(), deque())  # urgent, routine
        self._running: set[Key] = set()
        self._routine = 0  # routine passes running
        self._routine_limit = max(1, min(ROUTINE_WORKERS, workers - 1))
        self._again: dict[Key, Request] = {}  # asked for while its pass runs
        self._last: dict[Key, float] = {}  # when its last pass started (monotonic)
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def stop(self, timeout: float) -> bool:
        """Start no more passes; wait up to `timeout` seconds for the running ones (True if none is left)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            while self._running and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            return not self._running

    def request(self, key: Key, request: Request) -> None:
        with self._cond:
            if self._stopping:
                return
            if not self._threads:
                self._start()
            if key in self._running:
                self._again[key] = self._again[key] | request if key in self._again else request
                return
            routine = not (request.urgent or request.forced) and key not in self._queued
            if routine and time.monotonic() - self._last.get(key, -1e9) < self._interval / 2:
                return  # a routine pass so soon after the last one would see nothing new
            queued = self._queued.get(key)
            if queued is None:
                self._queued[key] = request
                self._lanes[0 if request.urgent else 1].append(key)
                self._cond.notify()
                return
            if request.urgent and not queued.urgent:
                self._lanes[1].remove(key)
                self._lanes[0].append(key)
                self._cond.notify()  # a worker may be waiting for a routine slot
            self._queued[key] = queued | request

    def _start(self) -> None:
        # Each worker runs in a copy of the requester's context: kopf.event finds kopf's event queue there.
        for index in range(self._workers):
            context = contextvars.copy_context()
            thread = threading.Thread(
                target=context.run, args=(self._work,), name=f"reconcile-{index}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _next(self) -> tuple[Key, Request] | None:
        urgent, routine = self._lanes
        with self._cond:
            while not (urgent or (routine and self._routine < self._routine_limit)):
                if self._stopping:
                    return None
                self._cond.wait()
            if self._stopping:
                return None
            key = (urgent or routine).popleft()
            request = self._queued.pop(key)
            self._routine += not request.urgent
            self._running.add(key)
            self._last[key] = time.monotonic()
            return key, request

    def _done(self, key: Key, request: Request) -> None:
        with self._cond:
            self._routine -= not request.urgent
            self._running.discard(key)
            again = self._again.pop(key, None)
            self._cond.notify_all()  # a routine pass may wait for this slot; stop() for the last pass
        if again is not None:
            self.request(key, again)

    def _work(self) -> None:
        while (task := self._next()) is not None:
            key, request = task
            delay = 0.0
            try:
                self._run(key, request)
            except ApiException as error:
                metrics.error("ApiError")
                reason = f"API error {error.status}: {error.reason}"
                log.warning("pass of %s/%s: %s; again in %gs", *key, reason, RETRY_DELAY)
                delay = RETRY_DELAY
            except Exception:
                log.exception("pass of %s/%s failed; again in %gs", *key, ERROR_DELAY)
                delay = ERROR_DELAY
            finally:
                self._done(key, request)
            if delay:
                retry = threading.Timer(delay, self.request, args=(key, request | Request(True, False)))
                retry.daemon = True
                retry.start()


class Handlers:
    """Handlers bound to one API client; the passes of one experiment never overlap."""

    def __init__(
        self,
        api: KubeApi,
        defaults: OperatorDefaults | None = None,
        interval: float = 1.0,
        workers: int = WORKERS,
        leading: Callable[[], bool] | None = None,
    ):
        self.api = api
        self.defaults = defaults or OperatorDefaults()
        self.leading = leading
        self.queue = PassQueue(self.reconcile, workers, interval)
        self._passed = threading.Event()  # a first pass has started (logged once: failover is timed by it)

    def reconcile(self, key: Key, request: Request = Request(True, True)) -> None:
        """One pass, from the experiment as the API server shows it now (not kopf's cached body)."""
        if self.leading is not None and not self.leading():
            log.warning("pass of %s/%s skipped: not holding the leader Lease", *key)
            return
        if not self._passed.is_set():
            self._passed.set()
            log.info("first reconcile pass: %s/%s", *key)
        fresh = self.api.get_experiment(*key)
        if fresh is None or fresh["metadata"].get("deletionTimestamp"):
            return
        if not request.forced and (fresh.get("status") or {}).get("phase") in FINISHED:
            return

        def event(type_: str, reason: str, message: str) -> None:
            try:
                kopf.event(cast(kopf.Body, fresh), type=type_, reason=reason, message=message[:1000])
            except RuntimeError as error:  # kopf's loop has closed: a pass draining at shutdown
                if "closed" not in str(error):
                    raise
                log.warning("stopping, event not posted: %s %s %s/%s: %s", type_, reason, *key, message)

        Reconciler(self.api, event, self.defaults).reconcile(fresh)

    async def on_experiment(self, body: kopf.Body, **_: Any) -> None:
        self.queue.request((body["metadata"]["namespace"], body["metadata"]["name"]), Request(True, True))

    async def on_timer(self, body: kopf.Body, **_: Any) -> None:
        self.queue.request((body["metadata"]["namespace"], body["metadata"]["name"]), Request(False, False))

    async def on_job(self, namespace: str | None, labels: Mapping[str, str], **_: Any) -> None:
        if namespace is not None:
            self.queue.request((namespace, labels[EXPERIMENT_LABEL]), Request(True, False))


def _unfinished(status: Mapping[str, Any], **_: Any) -> bool:
    return status.get("phase") not in FINISHED


def _ended_or_gone(type: str | None, body: kopf.Body, **_: Any) -> bool:
    """A Job event the next pass acts on at once: its segment ended (a slot is free) or it vanished.
    Other changes (its pod started) wait for the routine pass."""
    return type == "DELETED" or job_ended(body)


def register(
    registry: kopf.OperatorRegistry,
    api: KubeApi,
    interval: float,
    defaults: OperatorDefaults | None = None,
    workers: int = WORKERS,
    leading: Callable[[], bool] | None = None,
) -> Handlers:
    """`leading`: with leader election, whether this replica holds the Lease now (no pass otherwise)."""
    handlers = Handlers(api, defaults, interval, workers, leading)
    kopf.on.resume(*EXPERIMENTS, registry=registry)(handlers.on_experiment)
    kopf.on.create(*EXPERIMENTS, registry=registry)(handlers.on_experiment)
    kopf.on.update(*EXPERIMENTS, field="spec", registry=registry)(handlers.on_experiment)
    kopf.timer(*EXPERIMENTS, interval=interval, when=_unfinished, registry=registry)(handlers.on_timer)
    kopf.on.event(
        "batch", "v1", "jobs", labels={EXPERIMENT_LABEL: kopf.PRESENT}, when=_ended_or_gone, registry=registry
    )(handlers.on_job)
    return handlers
