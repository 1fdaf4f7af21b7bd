"""`kubenas run`: the controller core driven through the local backend instead of Kubernetes."""

from __future__ import annotations

import math
from pathlib import Path

from kubenas.api.errors import SpecError
from kubenas.api.experiment import NASExperiment, NASExperimentSpec
from kubenas.api.kube import parse_quantity
from kubenas.api.status import NASExperimentStatus, NASTrialSpec, NASTrialStatus
from kubenas.engine.cycle import run_pass
from kubenas.engine.records import TrialRecord, record
from kubenas.local.backend import LocalBackend, now_iso
from kubenas.local.console import Console, Mode, make_console
from kubenas.local.launcher import Launcher, LocalLauncher
from kubenas.local.store import RunStore
from kubenas.local.workers import WorkerPool

POLL_SECONDS = 0.2


class LocalRun:
    """One experiment in a run directory; run() is restartable: it resumes what the directory holds."""

    def __init__(
        self,
        experiment: NASExperiment,
        output: Path,
        console: Console | None = None,
        *,
        progress: Mode = "plain",
        verbose: bool = False,
        fresh_processes: bool = False,
    ):
        """`progress` and `verbose` choose the console's view unless `console` is given;
        `fresh_processes`: a new trainer process per segment instead of reused workers."""
        self.experiment = experiment
        self.name = experiment.metadata.name
        self.spec = experiment.spec
        self.store = RunStore(output / self.name)
        self.warm = warm_trials(output, self.spec.strategy.warm_start_from)
        slots, cpus = self.spec.budget.parallel_trials, cpu_limit(self.spec)
        self.launcher: Launcher
        if fresh_processes:
            self.launcher = LocalLauncher(slots, cpu_limit=cpus)
        else:
            self.launcher = WorkerPool(slots, log=self.store.root / "workers.log", cpu_limit=cpus)
        self.console = console or make_console(self.spec, self.name, progress, verbose, self.read_trial)
        namespace = experiment.metadata.namespace or "default"
        self.backend = LocalBackend(self.store, self.launcher, self.console, self.spec, self.name, namespace)

    def run(self) -> NASExperimentStatus:
        self.store.save_manifest(self.experiment)
        status = self.store.load_status()
        self.console.recorded(self.store.trials())
        try:
            self.launcher.prepare()
            while True:
                done = run_pass(self.name, self.backend, self.spec, status, None, now_iso(), self.warm)
                status = done.status
                self.store.save_status(status)
                if done.warning is not None:
                    self.console.warning(*done.warning)
                if done.finished and not self.launcher.running:
                    break
                self.backend.show_epochs()
                self.console.status(status)
                self.launcher.wait(POLL_SECONDS)  # sooner when a segment ends
            self.console.summary(status)
        finally:
            self.launcher.stop_all()
            self.console.close()
        return status

    def read_trial(self, name: str) -> tuple[NASTrialSpec, NASTrialStatus] | None:
        """A trial's recorded spec and status, for the console (None before it is recorded)."""
        spec_path = self.store.trial_dir(name) / "trial.json"
        if not spec_path.exists():
            return None
        status_path = spec_path.parent / "status.json"
        status = (
            NASTrialStatus.model_validate_json(status_path.read_text())
            if status_path.exists()
            else NASTrialStatus()
        )
        return NASTrialSpec.model_validate_json(spec_path.read_text()), status


def cpu_limit(spec: NASExperimentSpec) -> int | None:
    """trialTemplate.resources.limits.cpu in whole CPUs (rounded up): a local trial's most threads."""
    limit = spec.trial_template.resources.limits.get("cpu")
    amount = None if limit is None else parse_quantity(limit)
    return None if amount is None else max(1, math.ceil(amount))


def warm_trials(output: Path, source: str | None) -> list[TrialRecord]:
    """The trials of spec.strategy.warmStartFrom's run under the same output directory."""
    if source is None:
        return []
    if not (output / source / "trials").is_dir():
        raise SpecError([f"spec.strategy.warmStartFrom: no run of experiment {source!r} under {output}"])
    return [record(spec, status, name) for name, spec, status in RunStore(output / source).trials()]


def run_experiment(
    experiment: NASExperiment,
    output: Path,
    progress: Mode = "plain",
    verbose: bool = False,
    fresh_processes: bool = False,
) -> NASExperimentStatus:
    """Run `experiment` into `output`, showing its progress as plain lines or (`live`) a live table;
    `fresh_processes`: a new trainer process per segment (the default reuses worker processes)."""
    run = LocalRun(experiment, output, progress=progress, verbose=verbose, fresh_processes=fresh_processes)
    return run.run()
