"""The backend protocol: what engine.observe and engine.execute need from where trials run.

A backend is a thin adapter: it records trials and their statuses, starts and stops segments, and
delivers events; it decides nothing. kubenas.k8s.backend keeps trials as NASTrials and runs each
segment as a Job; kubenas.local.backend keeps them in a run directory and runs each as a process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kubenas_trainer.spec import TrialSpec

from kubenas.api.status import NASTrialSpec, NASTrialStatus
from kubenas.engine.events import Event
from kubenas.engine.observe import Health, ObservedTrial


class Refused(Exception):
    """The backend's store refused an action (e.g. the API server answered 422 Invalid or 403 quota):
    `what` names the object, `reason` is one CamelCase word, `message` the store's own explanation."""

    def __init__(self, what: str, reason: str, message: str) -> None:
        super().__init__(f"{what}: {message}")
        self.what, self.reason, self.message = what, reason, message


@dataclass(frozen=True)
class Segment:
    """One run of a trial's trainer, up to a pause or the end.

    `resumes_after`: the trial's own recorded epochs when it continues itself from a pause (None for
    its first segment): segments are named by it, so a restarted controller finds the same one.
    `starts_after`: the epochs its weights have at the start (its own, or those of the trial its
    spec.startFrom names), so a display can tell new epochs from inherited ones.
    """

    trial: str
    index: int
    input: TrialSpec
    resumes_after: int | None = None
    starts_after: int = 0


class Backend(Protocol):
    namespace: str  # where the experiment lives (a label of its trials' metrics and storage paths)

    def observe(self) -> list[ObservedTrial]:
        """Every trial of the experiment: its spec, recorded status, current segment, live metrics."""

    def create_trial(self, name: str, spec: NASTrialSpec) -> NASTrialSpec:
        """Record the trial unless it exists; the spec recorded (an existing trial's is the truth)."""

    def write_status(self, name: str, status: NASTrialStatus) -> None:
        """Record the trial's status (the whole status: fields left None are cleared)."""

    def start_segment(self, segment: Segment) -> None:
        """Start the segment unless it exists (idempotent)."""

    def stop_segment(self, name: str, ref: str) -> None:
        """Stop the trial's segment `ref` (as observed) if it still runs."""

    def checkpoint_location(self, trial: str) -> str:
        """Where trial's trainer keeps its checkpoint, as another trial's trainer can read it."""

    def send(self, event: Event) -> None:
        """Deliver an event about the experiment's trial."""

    def drop_live_metrics(self, name: str) -> None:
        """The trial's segment ended: delete its live series (its status now holds its curve)."""

    def health(self) -> list[Health]:
        """How the channels the last observation used fared (metrics, storage); [] when none is used."""
