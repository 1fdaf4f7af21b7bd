"""One reconcile pass of a NASExperiment: observe, call the controller core, carry out its plan.

Level-triggered and idempotent: every pass starts from what the API server shows, children have
deterministic names, so a pass interrupted anywhere (operator killed) is completed by the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubenas_trainer.spec import CHECKPOINT_FILE

from kubenas.api.errors import SpecError, parse_model
from kubenas.api.experiment import NASExperimentSpec
from kubenas.api.status import NASExperimentStatus, NASTrialSpec, NASTrialStatus, TrialPhase
from kubenas.engine import Plan, TrialLaunch, invalid_spec_status, nastrial_spec, plan
from kubenas.k8s.client import KubeApi
from kubenas.k8s.manifests import job_name, nastrial, trial_job, trial_output
from kubenas.k8s.observe import observe_trial
from kubenas.strategies import Strategy, make_strategy
from kubenas.trials import TrialRecord, record, trial_spec

log = logging.getLogger(__name__)
Obj = Mapping[str, Any]
EventSink = Callable[[str, str, str], None]  # (type, reason, message)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_patch(status: NASExperimentStatus | NASTrialStatus) -> dict[str, Any]:
    """A merge patch that also clears fields that became empty (None deletes the key)."""
    return status.model_dump(mode="json", by_alias=True)


@dataclass
class Reconciler:
    api: KubeApi
    event: EventSink

    def reconcile(self, body: Obj) -> NASExperimentStatus:
        meta = body["metadata"]
        namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
        previous = _previous_status(body)
        try:
            spec = parse_model(NASExperimentSpec, body.get("spec") or {}, prefix="spec")
            check_cluster_spec(spec, make_strategy(spec))
            warm = self._warm_trials(namespace, spec)
        except SpecError as error:
            return self._invalid(body, error, previous)
        records = self._observe_trials(namespace, name, spec)
        step = plan(name, spec, records, previous, generation, now_iso(), warm=warm)
        self._apply(body, spec, records, step)
        if step.status.phase != previous.phase and step.finished:
            reason = step.status.conditions[-1].reason
            kind = "Normal" if step.status.phase == "Succeeded" else "Warning"
            self.event(
                kind, f"Experiment{step.status.phase}", f"{reason}: {step.status.conditions[-1].message}"
            )
        if step.status != previous:
            self.api.patch_experiment_status(namespace, name, status_patch(step.status))
        return step.status

    def _invalid(self, body: Obj, error: SpecError, previous: NASExperimentStatus) -> NASExperimentStatus:
        meta = body["metadata"]
        status = invalid_spec_status(error.problems, previous, meta.get("generation"), now_iso())
        if status != previous:
            self.event("Warning", "InvalidSpec", "; ".join(error.problems))
            self.api.patch_experiment_status(meta["namespace"], meta["name"], status_patch(status))
        return status

    def _warm_trials(self, namespace: str, spec: NASExperimentSpec) -> list[TrialRecord]:
        """The succeeded trials of spec.strategy.warmStartFrom, as recorded in their NASTrials."""
        source = spec.strategy.warm_start_from
        if source is None:
            return []
        if self.api.get_experiment(namespace, source) is None:
            raise SpecError(
                [f"spec.strategy.warmStartFrom: no NASExperiment {source!r} in namespace {namespace}"]
            )
        out = []
        for trial in self.api.list_trials(namespace, source):
            try:
                trial_spec_ = NASTrialSpec.model_validate(trial["spec"])
                status = NASTrialStatus.model_validate(trial.get("status") or {})
            except ValueError:
                continue
            out.append(record(trial_spec_, status, trial["metadata"]["name"], launched=True))
        return out

    def _observe_trials(self, namespace: str, experiment: str, spec: NASExperimentSpec) -> list[TrialRecord]:
        trials = self.api.list_trials(namespace, experiment)
        jobs = {j["metadata"]["name"]: j for j in self.api.list_jobs(namespace, experiment)}
        pods_by_job: dict[str, list[Obj]] = {}
        for pod in self.api.list_pods(namespace, experiment):
            owner = pod["metadata"].get("labels", {}).get("job-name", "")
            pods_by_job.setdefault(owner, []).append(pod)
        records = []
        for trial in trials:
            name = trial["metadata"]["name"]
            try:
                trial_spec_ = NASTrialSpec.model_validate(trial["spec"])
                current = NASTrialStatus.model_validate(trial.get("status") or {})
            except ValueError as error:
                log.warning("ignoring malformed NASTrial %s/%s: %s", namespace, name, error)
                continue
            segment = job_name(name, current.epochs if current.phase in ACTIVE else None)
            job = jobs.get(segment)
            status = observe_trial(
                name, current, job, pods_by_job.get(segment, []), spec.objective.metric, now_iso()
            )
            if status != current:
                self.api.patch_trial_status(namespace, name, status_patch(status))
                if status.phase is TrialPhase.PAUSED:
                    self.event("Normal", "TrialPaused", f"{name}: {status.message}, {_outcome(status, spec)}")
                elif status.phase.finished:
                    self.event(
                        "Normal" if status.phase is TrialPhase.SUCCEEDED else "Warning",
                        f"Trial{status.phase}",
                        f"{name}: {_outcome(status, spec)}",
                    )
            records.append(
                record(trial_spec_, status, name, launched=job is not None or status.phase.finished)
            )
        return records

    def _apply(self, body: Obj, spec: NASExperimentSpec, records: list[TrialRecord], step: Plan) -> None:
        meta = body["metadata"]
        namespace, experiment = meta["namespace"], meta["name"]
        by_name = {r.name: r for r in records}
        for reuse in step.reuse:
            nas_spec = nastrial_spec(experiment, reuse)
            self.api.create_trial(namespace, nastrial(reuse.name, namespace, meta["uid"], nas_spec))
            self.api.patch_trial_status(namespace, reuse.name, status_patch(reuse.status))
            self.event("Normal", "TrialReused", f"{reuse.name}: {reuse.status.message}")
        for wait in step.wait:
            nas_spec = nastrial_spec(experiment, wait)
            self.api.create_trial(namespace, nastrial(wait.name, namespace, meta["uid"], nas_spec))
            message = f"waits for the result of {wait.twin} (same candidate, still training)"
            pending = NASTrialStatus(phase=TrialPhase.PENDING, message=message)
            self.api.patch_trial_status(namespace, wait.name, status_patch(pending))
            self.event("Normal", "TrialWaiting", f"{wait.name}: {message}")
        for launch in step.launch:
            self._launch(body, spec, launch, by_name.get(launch.name))
        for stop in step.stop:
            trial = by_name.get(stop.name)
            if trial is None:
                continue
            if trial.phase is not TrialPhase.PAUSED:
                self.api.delete_job(namespace, job_name(stop.name, trial.epochs))
            stopped = NASTrialStatus(
                phase=TrialPhase.STOPPED,
                metrics=trial.metrics,
                epochs=trial.epochs,
                curve=list(trial.curve),
                message=stop.reason,
                completion_time=now_iso(),
            )
            self.api.patch_trial_status(namespace, stop.name, status_patch(stopped))

    def _launch(
        self, body: Obj, spec: NASExperimentSpec, launch: TrialLaunch, known: TrialRecord | None
    ) -> None:
        meta = body["metadata"]
        namespace, experiment = meta["namespace"], meta["name"]
        nas_spec = nastrial_spec(experiment, launch)
        created = self.api.create_trial(namespace, nastrial(launch.name, namespace, meta["uid"], nas_spec))
        # The trial that exists is the truth (an earlier pass may have created it).
        nas_spec = NASTrialSpec.model_validate(created["spec"])
        epochs = known.epochs if known is not None else None
        until = f"epoch {launch.stop_at}" if launch.stop_at else "the end"
        if launch.promoted and known is not None:
            reopened = NASTrialStatus(
                phase=TrialPhase.PENDING,
                metrics=known.metrics,
                epochs=known.epochs,
                curve=list(known.curve),
                message=f"promoted after epoch {known.epochs}: continues to {until}",
            )
            self.api.patch_trial_status(namespace, launch.name, status_patch(reopened))
        start_from = None
        if nas_spec.start_from is not None:
            start_from = f"{trial_output(namespace, experiment, nas_spec.start_from)}/{CHECKPOINT_FILE}"
        job = trial_job(
            launch.name,
            namespace,
            created["metadata"]["uid"],
            trial_spec(
                launch.name,
                nas_spec,
                spec.training,
                spec.objective.ref(),
                stop_at=launch.stop_at,
                start_from=start_from,
            ),
            nas_spec.index,
            experiment,
            spec.trial_template,
            segment=job_name(launch.name, epochs),
        )
        self.api.create_job(namespace, job)
        if launch.new:
            note = f"; {' / '.join(launch.note.splitlines())}" if launch.note else ""
            self.event("Normal", "TrialCreated", f"{launch.name}: {launch.candidate.key()}{note}"[:1000])
        elif launch.promoted:
            self.event(
                "Normal",
                "TrialPromoted",
                f"{launch.name}: continues after epoch {epochs} to {until}",
            )


ACTIVE = (TrialPhase.PENDING, TrialPhase.RUNNING)


def check_cluster_spec(spec: NASExperimentSpec, strategy: Strategy) -> None:
    """What a cluster needs beyond the local runner: a volume for checkpoints that outlive a Job."""
    if spec.trial_template.checkpoint_volume is not None:
        return
    needs = None
    if spec.early_stopping.rule in ("asha", "hyperband"):
        needs = f"earlyStopping.rule {spec.early_stopping.rule}"
    elif strategy.continues_trials:
        needs = f"strategy {strategy.name}"
    if needs:
        raise SpecError(
            [
                f"spec.trialTemplate.checkpointVolume: required on a cluster with {needs}: a continued trial "
                "reads the checkpoint an earlier Job wrote (e.g. a ReadWriteMany persistentVolumeClaim)"
            ]
        )


def _outcome(status: NASTrialStatus, spec: NASExperimentSpec) -> str:
    if status.phase in ("Succeeded", "Paused"):
        return f"{spec.objective.metric}={status.objective_value:g}"
    return status.message[-300:]


def _previous_status(body: Obj) -> NASExperimentStatus:
    try:
        return NASExperimentStatus.model_validate(body.get("status") or {})
    except ValueError:
        return NASExperimentStatus()
