"""The Kubernetes backend: trials are NASTrials, each segment of a trial is one Job.

A thin adapter of engine.backend.Backend over KubeApi; every call is idempotent (deterministic names,
409 on create and 404 on delete are success), so a pass interrupted anywhere is completed by the next.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from kubenas_trainer.spec import CHECKPOINT_FILE

from kubenas.api.experiment import NASExperimentSpec
from kubenas.api.status import NASTrialSpec, NASTrialStatus, TrialPhase
from kubenas.engine.backend import Segment
from kubenas.engine.events import Event
from kubenas.engine.observe import ObservedTrial, SegmentView
from kubenas.k8s.client import KubeApi
from kubenas.k8s.labels import TRIAL_LABEL
from kubenas.k8s.objects import job_name, nastrial, trial_job, trial_output
from kubenas.k8s.observe import job_ended, segment_view

log = logging.getLogger(__name__)
Obj = Mapping[str, Any]
EventSink = Callable[[str, str, str], None]  # (type, reason, message) on the experiment
EVENT_MESSAGE_LIMIT = 1000


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

    def observe(self) -> list[ObservedTrial]:
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
            out.append(ObservedTrial(name, spec, status, self._segment(name, status, by_name, pods_by_job)))
        return out

    def _segment(
        self, name: str, status: NASTrialStatus, jobs: Mapping[str, Obj], pods: Mapping[str, list[Obj]]
    ) -> SegmentView:
        """The Job of the trial's current segment: the one that started after its recorded epochs.
        Between segments (paused) or after the end, only a Job still running counts (to be stopped)."""
        if status.phase in (TrialPhase.PENDING, TrialPhase.RUNNING):
            segment = job_name(name, status.epochs)
            return segment_view(name, jobs.get(segment), pods.get(segment, []))
        for job in jobs.values():
            if job["metadata"].get("labels", {}).get(TRIAL_LABEL) == name and not job_ended(job):
                return segment_view(name, job, pods.get(job["metadata"]["name"], []))
        return SegmentView()

    def create_trial(self, name: str, spec: NASTrialSpec) -> NASTrialSpec:
        created = self.api.create_trial(self.namespace, nastrial(name, self.namespace, self.uid, spec))
        self._uids[name] = created["metadata"]["uid"]
        return NASTrialSpec.model_validate(created["spec"])

    def write_status(self, name: str, status: NASTrialStatus) -> None:
        self.api.patch_trial_status(self.namespace, name, status_patch(status))

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
        )
        self.api.create_job(self.namespace, job)

    def stop_segment(self, name: str, ref: str) -> None:
        if ref:
            self.api.delete_job(self.namespace, ref)

    def checkpoint_location(self, trial: str) -> str:
        return f"{trial_output(self.namespace, self.experiment, trial)}/{CHECKPOINT_FILE}"

    def send(self, event: Event) -> None:
        message = f"{event.trial}: {' / '.join(event.message.splitlines())}"
        self.event(event.type, event.reason, message[:EVENT_MESSAGE_LIMIT])
