"""Carry out a Plan through a Backend: the one executor of the cluster and the local runner.

Order: stops first (a stopped trial's status is written before its segment is stopped, so a crash
in between leaves a finished trial whose segment the next observation stops), then reused and waiting
trials, then launches. What a stopped or promoted trial's status holds, where a continued trial finds
its checkpoint, and which events are sent, are decided here and nowhere else. When the backend
refuses to create something, nothing more is created this pass: the refusal is returned, and the
caller holds off (engine.backoff) rather than repeat it every pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kubenas_trainer.spec import CHECKPOINT_FILE, ArtifactStore, MetricsReport, TrialSpec

from kubenas.api.experiment import MetricGoal, NASExperimentSpec
from kubenas.api.status import NASTrialSpec, NASTrialStatus, TrialPhase
from kubenas.engine.backend import Backend, Refused, Segment
from kubenas.engine.decide import Plan, TrialLaunch
from kubenas.engine.events import Event, describe
from kubenas.engine.observe import Observation
from kubenas.engine.records import TrialRecord, ran
from kubenas.metrics.live import trial_labels


def execute(
    plan: Plan, backend: Backend, spec: NASExperimentSpec, seen: Observation, now: str
) -> Refused | None:
    """Carry out `plan`, decided from `seen` (this pass's observation); the first refusal, if any."""
    try:
        _carry_out(plan, backend, spec, seen, now)
    except Refused as refused:
        return refused
    return None


def _carry_out(plan: Plan, backend: Backend, spec: NASExperimentSpec, seen: Observation, now: str) -> None:
    records = {r.name: r for r in seen.records}
    for stop in plan.stop:
        trial = records.get(stop.name)
        if trial is None:
            continue
        backend.write_status(stop.name, stopped_status(trial, stop.reason, spec.objective, now))
        segment = seen.segments.get(stop.name)
        if segment is not None and segment.active:
            backend.stop_segment(stop.name, segment.ref)
        backend.send(Event("Normal", "TrialStopped", stop.name, stop.reason))
    for reuse in plan.reuse:
        backend.create_trial(reuse.name, reuse.spec)
        backend.write_status(reuse.name, reuse.status)
        backend.send(Event("Normal", "TrialReused", reuse.name, reuse.status.message))
    for wait in plan.wait:
        backend.create_trial(wait.name, wait.spec)
        message = f"waits for the result of {wait.twin} (same candidate, still training)"
        backend.write_status(wait.name, NASTrialStatus(phase=TrialPhase.PENDING, message=message))
        backend.send(Event("Normal", "TrialWaiting", wait.name, message))
    for launch in plan.launch:
        _launch(launch, backend, spec, records)


def _launch(
    launch: TrialLaunch, backend: Backend, spec: NASExperimentSpec, records: Mapping[str, TrialRecord]
) -> None:
    trial = backend.create_trial(launch.name, launch.spec)  # the trial that exists is the truth
    known = records.get(launch.name)
    own = known.epochs if known is not None else None
    last = trial.candidate.hyperparameters.epochs or spec.training.epochs
    until = f"epoch {launch.stop_at or last}"
    if launch.promoted and known is not None:
        backend.write_status(
            launch.name, reopened_status(known, f"promoted after epoch {own}: continues to {until}")
        )
    parent = records.get(trial.start_from) if trial.start_from else None
    inherited = (parent.epochs or 0) if parent is not None else 0
    start_from = None
    if trial.start_from is not None:
        start_from = (
            spec.storage.trial_uri(backend.namespace, trial.experiment, trial.start_from) + CHECKPOINT_FILE
            if spec.storage is not None
            else backend.checkpoint_location(trial.start_from)
        )
    segment = Segment(
        trial=launch.name,
        index=trial.index,
        input=trainer_input(launch.name, trial, spec, launch.stop_at, start_from, backend.namespace),
        resumes_after=own,
        starts_after=own or inherited,
    )
    backend.start_segment(segment)
    if launch.new:
        created = "\n".join([describe(trial.candidate), *trial.note.splitlines()])
        backend.send(Event("Normal", "TrialCreated", launch.name, created))
    elif launch.promoted:
        backend.send(Event("Normal", "TrialPromoted", launch.name, f"continues after epoch {own} to {until}"))
    else:
        after = f" after epoch {own}" if own else ""
        backend.send(
            Event("Normal", "TrialStarted", launch.name, f"starts{after} (recorded earlier, not running)")
        )


def trainer_input(
    name: str,
    trial: NASTrialSpec,
    spec: NASExperimentSpec,
    stop_at: int | None,
    start_from: str | None,
    namespace: str,
) -> TrialSpec:
    """The trainer's input for one segment: the objective picks its best epoch and drives its early
    stopping; `start_from` is the checkpoint trial.startFrom names, `stop_at` where it pauses. With
    spec.metrics it pushes every epoch's metrics; with spec.storage it uploads its run directory."""
    report = storage = None
    if spec.metrics is not None:
        labels = trial_labels(namespace, trial.experiment, name)
        report = MetricsReport(pushgateway=spec.metrics.pushgateway, labels=labels)
    if spec.storage is not None:
        uri = spec.storage.trial_uri(namespace, trial.experiment, name)
        storage = ArtifactStore(uri=uri, endpoint=spec.storage.endpoint, region=spec.storage.region)
    return TrialSpec(
        name=name,
        candidate=trial.candidate,
        training=spec.training,
        seed=trial.seed,
        objective=spec.objective.ref(),
        stop_at_epoch=stop_at,
        start_from=start_from,
        report=report,
        storage=storage,
    )


def stopped_status(trial: TrialRecord, reason: str, objective: MetricGoal, now: str) -> NASTrialStatus:
    """A stopped trial keeps what it reached: its last live epoch when that is newer than its record."""
    live: Sequence[dict[str, float]] = trial.epoch_metrics
    if len(live) > (trial.epochs or 0):
        metrics = {k: v for k, v in live[-1].items() if k != "epoch"}
        epochs: int | None = len(live)
        curve = [row[objective.metric] for row in live if objective.metric in row]
    else:
        metrics, epochs, curve = dict(trial.metrics), trial.epochs, list(trial.curve)
    return NASTrialStatus(
        phase=TrialPhase.STOPPED,
        objective_value=metrics.get(objective.metric),
        metrics=metrics,
        test_metrics=trial.test_metrics,
        epochs=epochs,
        curve=curve,
        split_fingerprint=trial.split_fingerprint,
        artifacts=trial.artifacts,
        run_seconds=ran(trial, now) or None,
        message=reason,
        start_time=trial.start_time,
        completion_time=now,
    )


def reopened_status(trial: TrialRecord, message: str) -> NASTrialStatus:
    """A paused trial going on: pending again, keeping what it reached until its next report."""
    return NASTrialStatus(
        phase=TrialPhase.PENDING,
        metrics=trial.metrics,
        test_metrics=trial.test_metrics,
        epochs=trial.epochs,
        curve=list(trial.curve),
        split_fingerprint=trial.split_fingerprint,
        artifacts=trial.artifacts,
        run_seconds=trial.run_seconds or None,
        message=message,
        start_time=trial.start_time,
    )
