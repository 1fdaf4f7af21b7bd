"""The Kubernetes backend: trials are NASTrials, each segment of a trial is one Job.

A thin adapter of engine.backend.Backend over KubeApi; every call is idempotent (deterministic names,
AlreadyExists on create and 404 on delete are success), so a pass interrupted anywhere is completed by
the next.
With spec.metrics it reads running trials' per-epoch metrics from Prometheus; with spec.storage it
reads a trial's result.json from object storage when the pod's termination message cannot say all.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from kubenas_trainer.spec import CHECKPOINT_FILE
from kubernetes.client.exceptions import ApiException

from kubenas.api.experiment import NASExperimentSpec
from kubenas.api.status import NASTrialSpec, NASTrialStatus, TrialPhase
from kubenas.artifacts import StorageUnavailable, read_result
from kubenas.engine.backend import Refused, Segment
from kubenas.engine.events import Event
from kubenas.engine.observe import Health, ObservedTrial, SegmentState, SegmentView
from kubenas.k8s.client import KubeApi
from kubenas.k8s.labels import TRIAL_LABEL
from kubenas.k8s.objects import job_name, nastrial, trial_job, trial_output
from kubenas.k8s.observe import job_ended, segment_view
from kubenas.metrics import operator as metrics
from kubenas.metrics.live import LiveEpochs, MetricsUnavailable, forget, read_epochs, trial_labels

log = logging.getLogger(__name__)
Obj = Mapping[str, Any]
EventSink = Callable[[str, str, str], None]  # (type, reason, message) on the experiment
EVENT_MESSAGE_LIMIT = 1000


# Answers of the API server that no retry of the same request can change (a 5xx, 429 or a lost
# connection is transient: the pass fails and kopf retries it).
REFUSALS = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 413: "TooLarge", 422: "Invalid"}


@contextlib.contextmanager
def refusals(what: str) -> Iterator[None]:
    """API errors that no retry can cure, as engine Refused naming `what` and the server's message."""
    try:
        yield
    except ApiException as error:
        if error.status not in REFUSALS:
            raise
        message = _server_message(error)
        reason = "QuotaExceeded" if "exceeded quota" in message else REFUSALS[error.status]
        metrics.error("ApiError")
        raise Refused(what, reason, message) from error


def _server_message(error: ApiException) -> str:
    try:
        body = json.loads(error.body or "{}")
    except ValueError:
        body = {}
    text = body.get("message") if isinstance(body, dict) else None
    return str(text or f"{error.status} {error.reason}")


def status_patch(status: Any) -> dict[str, Any]:
    """A merge patch of the whole status: a field that became empty is sent as None, which clears it."""
    patch: dict[str, Any] = status.model_dump(mode="json", by_alias=True)
    return patch


class KubernetesBackend:
    def __init__(self, api: KubeApi, experiment: Obj, spec: NASExperimentSpec, event: EventSink) -> None:
        meta = experiment["metadata"]
        self.api = api
        self.namespace: str = meta["namespace"]
        self.experiment: str = meta["name"]
        self.uid: str = meta["uid"]
        self.spec = spec
        self.event = event
        self._uids: dict[str, str] = {}  # NASTrial name -> uid, the owner of its Jobs
        self._health: list[Health] = []

    def observe(self) -> list[ObservedTrial]:
        self._health = []
        live = self._live_epochs()
        jobs = self.api.list_jobs(self.namespace, self.experiment)
        pods_by_job: dict[str, list[Obj]] = {}
        for pod in self.api.list_pods(self.namespace, self.experiment):
            owner = pod["metadata"].get("labels", {}).get("job-name", "")
            pods_by_job.setdefault(owner, []).append(pod)
        by_name = {j["metadata"]["name"]: j for j in jobs}
        out = []
        for trial in self.api.list_trials(self.namespace, self.experiment):
            name = trial["metadata"]["name"]
            try:
                spec = NASTrialSpec.model_validate(trial["spec"])
                status = NASTrialStatus.model_validate(trial.get("status") or {})
            except ValueError as error:
                log.warning("ignoring malformed NASTrial %s/%s: %s", self.namespace, name, error)
                continue
            self._uids[name] = trial["metadata"]["uid"]
            segment = self._segment(name, status, by_name, pods_by_job)
            rows = live.rows.get(name, ())
            metrics.saw_epochs(self.namespace, self.experiment, name, live.ended.get(name, {}))
            out.append(ObservedTrial(name, spec, status, segment, rows))
        return out

    def _live_epochs(self) -> LiveEpochs:
        """Running trials' epochs from Prometheus; none (and a False MetricsAvailable) if it cannot say."""
        if self.spec.metrics is None or self.spec.metrics.prometheus is None:
            return LiveEpochs()
        try:
            live = read_epochs(self.spec.metrics.prometheus, self.namespace, self.experiment)
        except MetricsUnavailable as error:
            metrics.error("PrometheusUnreachable")
            message = f"{error}; decisions that need live metrics (the median rule) wait"
            self._health.append(Health("MetricsAvailable", False, "PrometheusUnreachable", message))
            return LiveEpochs()
        self._health.append(Health("MetricsAvailable", True, "PrometheusAnswers"))
        return live

    def _segment(
        self, name: str, status: NASTrialStatus, jobs: Mapping[str, Obj], pods: Mapping[str, list[Obj]]
    ) -> SegmentView:
        """The Job of the trial's current segment: the one that started after its recorded epochs.
        Between segments (paused) or after the end, only a Job still running counts (to be stopped)."""
        if status.phase in (TrialPhase.PENDING, TrialPhase.RUNNING):
            segment = job_name(name, status.epochs)
            view = segment_view(name, jobs.get(segment), pods.get(segment, []))
            if view.state is SegmentState.ENDED and view.end_time:
                ended = datetime.fromisoformat(view.end_time).timestamp()
                metrics.segment_ended(self.namespace, self.experiment, view.ref, ended)
            return self._complete(name, status, view)
        for job in jobs.values():
            if job["metadata"].get("labels", {}).get(TRIAL_LABEL) == name and not job_ended(job):
                return segment_view(name, job, pods.get(job["metadata"]["name"], []))
        return SegmentView()

    def _complete(self, name: str, status: NASTrialStatus, view: SegmentView) -> SegmentView:
        """An ended segment whose termination message could not say all (it failed to parse, or its
        curve did not fit in 4 KiB) takes the result.json the trainer uploaded, when that is this
        segment's (it trained past the recorded epochs). Storage down: the segment's end waits."""
        result = view.result
        storage = self.spec.storage
        if view.state is not SegmentState.ENDED or result is None or storage is None:
            return view
        if result.phase != "Failed" and (result.curve or not result.epochs):
            return view
        uri = storage.trial_uri(self.namespace, self.experiment, name)
        try:
            stored = read_result(storage, uri)
        except StorageUnavailable as error:
            metrics.error("StorageUnreachable")
            message = f"{error}; {name}'s result waits"
            self._health.append(Health("StorageAvailable", False, "StorageUnreachable", message))
            return SegmentView(SegmentState.RUNNING, view.ref, start_time=view.start_time)
        if stored is not None and stored.epochs > (status.epochs or 0):
            return SegmentView(view.state, view.ref, stored, view.start_time, view.end_time)
        return view

    def create_trial(self, name: str, spec: NASTrialSpec) -> NASTrialSpec:
        with refusals(f"NASTrial {name}"):
            created = self.api.create_trial(self.namespace, nastrial(name, self.namespace, self.uid, spec))
        self._uids[name] = created["metadata"]["uid"]
        return NASTrialSpec.model_validate(created["spec"])

    def write_status(self, name: str, status: NASTrialStatus) -> None:
        try:
            with refusals(f"NASTrial {name} status"):
                self.api.patch_trial_status(self.namespace, name, status_patch(status))
        except Refused as refused:
            if refused.reason != "NotFound":
                raise
            # Deleted since this pass listed it (its experiment is being deleted, or a user deleted
            # it): nothing to write to; the next pass observes without it.
            log.info("NASTrial %s was deleted: its status is not written", name)

    def start_segment(self, segment: Segment) -> None:
        job = trial_job(
            segment.trial,
            self.namespace,
            self._uids[segment.trial],  # execute() creates (or finds) the trial first
            segment.input,
            segment.index,
            self.experiment,
            self.spec.trial_template,
            segment=job_name(segment.trial, segment.resumes_after),
            storage=self.spec.storage,
        )
        with refusals(f"Job {job['metadata']['name']}"):
            created = self.api.create_job(self.namespace, job)
        if created:
            metrics.job_created(self.namespace, self.experiment)

    def stop_segment(self, name: str, ref: str) -> None:
        if ref:
            with refusals(f"Job {ref}"):
                self.api.delete_job(self.namespace, ref)

    def checkpoint_location(self, trial: str) -> str:
        return f"{trial_output(self.namespace, self.experiment, trial)}/{CHECKPOINT_FILE}"

    def send(self, event: Event) -> None:
        message = f"{event.trial}: {' / '.join(event.message.splitlines())}"
        self.event(event.type, event.reason, message[:EVENT_MESSAGE_LIMIT])

    def drop_live_metrics(self, name: str) -> None:
        if self.spec.metrics is not None:
            forget(self.spec.metrics.pushgateway, trial_labels(self.namespace, self.experiment, name))

    def health(self) -> list[Health]:
        return list(self._health)
