"""One reconcile pass of a NASExperiment: observe, decide, execute, write the experiment's status.

Level-triggered and idempotent: every pass starts from what the API server shows, children have
deterministic names, so a pass interrupted anywhere (operator killed) is completed by the next one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubenas.api.errors import SpecError, parse_model
from kubenas.api.experiment import NASExperimentSpec
from kubenas.api.status import NASExperimentStatus, NASTrialSpec, NASTrialStatus
from kubenas.engine.cycle import run_pass
from kubenas.engine.decide import invalid_spec_status
from kubenas.engine.feasibility import check_feasible
from kubenas.engine.records import TrialRecord, record
from kubenas.k8s.backend import EventSink, KubernetesBackend, status_patch
from kubenas.k8s.client import KubeApi
from kubenas.k8s.defaults import OperatorDefaults
from kubenas.metrics import operator as metrics
from kubenas.strategies import Strategy, make_strategy

Obj = Mapping[str, Any]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Reconciler:
    api: KubeApi
    event: EventSink
    defaults: OperatorDefaults = field(default_factory=OperatorDefaults)

    def reconcile(self, body: Obj) -> NASExperimentStatus:
        with metrics.RECONCILE.time():
            return self._reconcile(body)

    def _reconcile(self, body: Obj) -> NASExperimentStatus:
        meta = body["metadata"]
        namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
        previous = _previous_status(body)
        try:
            spec = self.defaults.apply(parse_model(NASExperimentSpec, body.get("spec") or {}, prefix="spec"))
            strategy = make_strategy(spec)
            check_feasible(spec)
            check_cluster_spec(spec, strategy)
            warm = self._warm_trials(namespace, spec)
        except SpecError as error:
            metrics.error("InvalidSpec")
            return self._invalid(body, error, previous)
        strategy.propose = metrics.timed(strategy.name, strategy.propose)  # type: ignore[method-assign]
        backend = KubernetesBackend(self.api, body, spec, self.event)
        done = run_pass(name, backend, spec, previous, generation, now_iso(), warm, strategy)
        status = done.status
        metrics.experiment_status(namespace, name, spec.objective.metric, status)
        if done.warning is not None:
            if done.warning[0] == "StrategyRaised":
                metrics.error("StrategyFailure")
            self.event("Warning", *done.warning)
        if status.phase != previous.phase and done.finished:
            reason = status.conditions[-1].reason
            kind = "Normal" if status.phase == "Succeeded" else "Warning"
            self.event(kind, f"Experiment{status.phase}", f"{reason}: {status.conditions[-1].message}")
        if status != previous:
            self.api.patch_experiment_status(namespace, name, status_patch(status))
        return status

    def _invalid(self, body: Obj, error: SpecError, previous: NASExperimentStatus) -> NASExperimentStatus:
        meta = body["metadata"]
        status = invalid_spec_status(error.problems, previous, meta.get("generation"), now_iso())
        if status != previous:
            self.event("Warning", "InvalidSpec", "; ".join(error.problems))
            self.api.patch_experiment_status(meta["namespace"], meta["name"], status_patch(status))
        return status

    def _warm_trials(self, namespace: str, spec: NASExperimentSpec) -> list[TrialRecord]:
        """The trials of spec.strategy.warmStartFrom, as recorded in their NASTrials."""
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
                trial_spec = NASTrialSpec.model_validate(trial["spec"])
                status = NASTrialStatus.model_validate(trial.get("status") or {})
            except ValueError:
                continue
            out.append(record(trial_spec, status, trial["metadata"]["name"]))
        return out


def check_cluster_spec(spec: NASExperimentSpec, strategy: Strategy) -> None:
    """What a cluster needs beyond the local runner: somewhere checkpoints outlive a Job (object
    storage or a checkpoint volume), when trials continue others' checkpoints."""
    if spec.trial_template.checkpoint_volume is not None or spec.storage is not None:
        return
    needs = None
    if spec.early_stopping.rule in ("asha", "hyperband"):
        needs = f"earlyStopping.rule {spec.early_stopping.rule}"
    elif strategy.continues_trials:
        needs = f"strategy {strategy.name}"
    if needs:
        raise SpecError(
            [
                f"spec.storage: required on a cluster with {needs} (or spec.trialTemplate.checkpointVolume): "
                "a continued trial reads the checkpoint an earlier Job wrote; name a bucket, or a "
                "ReadWriteMany volume"
            ]
        )


def _previous_status(body: Obj) -> NASExperimentStatus:
    try:
        return NASExperimentStatus.model_validate(body.get("status") or {})
    except ValueError:
        return NASExperimentStatus()
