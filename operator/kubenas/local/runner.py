"""`kubenas run`: the controller core driven by local processes instead of Kubernetes Jobs."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from kubenas_trainer.spec import CHECKPOINT_FILE

from kubenas.api.errors import SpecError
from kubenas.api.experiment import NASExperiment
from kubenas.api.status import NASExperimentStatus, NASTrialStatus, TrialPhase
from kubenas.engine import Plan, TrialLaunch, nastrial_spec, plan
from kubenas.local.launcher import Exit, LocalLauncher
from kubenas.local.progress import Progress
from kubenas.local.store import RunStore
from kubenas.trials import TrialRecord, parse_result, status_from_result, trial_spec

POLL_SECONDS = 0.2


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LocalRun:
    """One experiment in a run directory; run() is restartable: it resumes what the directory holds."""

    def __init__(self, experiment: NASExperiment, output: Path, progress: Progress | None = None):
        self.experiment = experiment
        self.name = experiment.metadata.name
        self.spec = experiment.spec
        self.store = RunStore(output / self.name)
        self.warm = self._warm_trials(output)
        self.launcher = LocalLauncher(self.spec.budget.parallel_trials)
        self.progress = progress or Progress(self.spec.objective.metric, self.spec.training.epochs)
        self._started: dict[str, str] = {}

    def run(self) -> NASExperimentStatus:
        self.store.save_manifest(self.experiment)
        status = self.store.load_status()
        try:
            while True:
                for exit_ in self.launcher.poll():
                    self._finish(exit_)
                step = self._step(status)
                status = step.status
                self.store.save_status(status)
                if step.finished and not self.launcher.running:
                    break
                for name in self.launcher.running:
                    self.progress.epochs_written(name, self.store.trial_dir(name) / "metrics.jsonl")
                time.sleep(POLL_SECONDS)
        finally:
            self.launcher.stop_all()
        self.progress.summary(status)
        return status

    def _step(self, previous: NASExperimentStatus) -> Plan:
        records = self.store.records(self.launcher.running)
        step = plan(self.name, self.spec, records, previous, generation=None, now=now_iso(), warm=self.warm)
        progress = {r.name: r.progress for r in records}
        for stop in step.stop:
            self.launcher.stop(stop.name)
            last = progress.get(stop.name) or ({},)
            metrics = {k: v for k, v in last[-1].items() if k != "epoch"}
            status = NASTrialStatus(
                phase=TrialPhase.STOPPED,
                metrics=metrics,
                epochs=len(progress.get(stop.name, ())),
                message=stop.reason,
                start_time=self._started.get(stop.name),
                completion_time=now_iso(),
            )
            self.store.finish_trial(stop.name, status)
            self.progress.finished(stop.name, status)
        for wait in step.wait:
            self.store.create_trial(wait.name, nastrial_spec(self.name, wait))
            self.progress.waiting(wait.name, wait.twin)
        for reuse in step.reuse:
            self.store.create_trial(reuse.name, nastrial_spec(self.name, reuse))
            self.store.finish_trial(reuse.name, reuse.status)
            self.progress.started(reuse.name, reuse.candidate)
            self.progress.finished(reuse.name, reuse.status)
        epochs = {r.name: len(r.progress) for r in records}
        for launch in step.launch:
            self._launch(launch, epochs.get(launch.start_from or "", 0))
        return step

    def _launch(self, launch: TrialLaunch, inherited: int) -> None:
        nas_spec = nastrial_spec(self.name, launch)
        self.store.create_trial(launch.name, nas_spec)
        if launch.promoted:
            self.store.reopen_trial(launch.name)
        parent = None
        if launch.start_from is not None:
            parent = str(self.store.trial_dir(launch.start_from) / CHECKPOINT_FILE)
        spec = trial_spec(
            launch.name,
            nas_spec,
            self.spec.training,
            self.spec.objective.ref(),
            stop_at=launch.stop_at,
            start_from=parent,
        )
        self.launcher.launch(spec, self.store.trial_dir(launch.name))
        self._started.setdefault(launch.name, now_iso())
        if launch.promoted:
            self.progress.resumed(launch.name, launch.stop_at)
        else:
            self.progress.started(launch.name, launch.candidate, launch.note, inherited)

    def _warm_trials(self, output: Path) -> list[TrialRecord]:
        source = self.spec.strategy.warm_start_from
        if source is None:
            return []
        if not (output / source / "trials").is_dir():
            raise SpecError([f"spec.strategy.warmStartFrom: no run of experiment {source!r} under {output}"])
        return RunStore(output / source).records(running=set())

    def _finish(self, exit_: Exit) -> None:
        workdir = self.store.trial_dir(exit_.name)
        self.progress.epochs_written(exit_.name, workdir / "metrics.jsonl")
        result_file = workdir / "result.json"
        if result_file.exists():
            text = result_file.read_text()
        else:
            log = workdir / "trainer.log"
            text = log.read_text()[-2000:] if log.exists() else ""
            text = f"trainer exited with code {exit_.returncode} without a result: {text}"
        result = parse_result(text, exit_.name)
        status = status_from_result(
            result, self.spec.objective.metric, now_iso(), self._started.get(exit_.name)
        )
        self.store.finish_trial(exit_.name, status)
        self.progress.finished(exit_.name, status)


def run_experiment(experiment: NASExperiment, output: Path) -> NASExperimentStatus:
    return LocalRun(experiment, output).run()
