"""`kubenas run`: the controller core driven through the local backend instead of Kubernetes."""

from __future__ import annotations

import time
from pathlib import Path

from kubenas.api.errors import SpecError
from kubenas.api.experiment import NASExperiment
from kubenas.api.status import NASExperimentStatus
from kubenas.engine.cycle import run_pass
from kubenas.engine.records import TrialRecord, record
from kubenas.local.backend import LocalBackend, now_iso
from kubenas.local.console import Console
from kubenas.local.launcher import LocalLauncher
from kubenas.local.store import RunStore

POLL_SECONDS = 0.2


class LocalRun:
    """One experiment in a run directory; run() is restartable: it resumes what the directory holds."""

    def __init__(self, experiment: NASExperiment, output: Path, console: Console | None = None):
        self.experiment = experiment
        self.name = experiment.metadata.name
        self.spec = experiment.spec
        self.store = RunStore(output / self.name)
        self.warm = warm_trials(output, self.spec.strategy.warm_start_from)
        self.launcher = LocalLauncher(self.spec.budget.parallel_trials)
        self.console = console or Console(self.spec.objective.metric, self.spec.training.epochs)
        namespace = experiment.metadata.namespace or "default"
        self.backend = LocalBackend(self.store, self.launcher, self.console, self.spec, self.name, namespace)

    def run(self) -> NASExperimentStatus:
        self.store.save_manifest(self.experiment)
        status = self.store.load_status()
        try:
            while True:
                done = run_pass(self.name, self.backend, self.spec, status, None, now_iso(), self.warm)
                status = done.status
                self.store.save_status(status)
                if done.warning is not None:
                    self.console.warning(*done.warning)
                if done.finished and not self.launcher.running:
                    break
                self.backend.show_epochs()
                time.sleep(POLL_SECONDS)
        finally:
            self.launcher.stop_all()
        self.console.summary(status)
        return status


def warm_trials(output: Path, source: str | None) -> list[TrialRecord]:
    """The trials of spec.strategy.warmStartFrom's run under the same output directory."""
    if source is None:
        return []
    if not (output / source / "trials").is_dir():
        raise SpecError([f"spec.strategy.warmStartFrom: no run of experiment {source!r} under {output}"])
    return [record(spec, status, name) for name, spec, status in RunStore(output / source).trials()]


def run_experiment(experiment: NASExperiment, output: Path) -> NASExperimentStatus:
    return LocalRun(experiment, output).run()
