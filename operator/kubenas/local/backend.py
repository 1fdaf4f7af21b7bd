"""The local backend: trials live in a run directory, each segment of a trial runs in a local process
(kubenas.local.launcher: a reused worker by default, or a fresh process per segment).

Per-epoch metrics are read from each trial's metrics.jsonl as the trainer writes it. With
spec.metrics the trainers also push them (for dashboards), and with spec.storage they upload their
run directories, exactly as on a cluster.
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime

from kubenas_trainer.spec import CHECKPOINT_FILE, TrialResult

from kubenas.api.experiment import NASExperimentSpec
from kubenas.api.status import NASTrialSpec, NASTrialStatus
from kubenas.engine.backend import Refused, Segment
from kubenas.engine.events import Event
from kubenas.engine.observe import Health, ObservedTrial, SegmentState, SegmentView, parse_result
from kubenas.local.console import Console
from kubenas.local.launcher import Exit, Launcher
from kubenas.local.store import RunStore
from kubenas.metrics.live import forget, trial_labels

RESULT_FILE = "result.json"
LOG_FILE = "trainer.log"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ending(returncode: int) -> str:
    """How a trainer process ended: its exit status, or the signal that killed it (e.g. the OOM killer's)."""
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


class LocalBackend:
    def __init__(
        self,
        store: RunStore,
        launcher: Launcher,
        console: Console,
        spec: NASExperimentSpec,
        experiment: str,
        namespace: str = "default",
    ) -> None:
        self.store = store
        self.launcher = launcher
        self.console = console
        self.spec = spec
        self.experiment = experiment
        self.namespace = namespace
        self._exits: dict[str, Exit] = {}  # processes that ended since the last observation
        self._started: dict[str, str] = {}

    def observe(self) -> list[ObservedTrial]:
        for exit_ in self.launcher.poll():
            self._exits[exit_.name] = exit_
        running = self.launcher.running
        out = []
        for name, spec, status in self.store.trials():
            if name in running:
                segment = SegmentView(SegmentState.RUNNING, name, start_time=self._started.get(name))
            elif name in self._exits:
                self.console.epoch_lines(name, self.store.trial_dir(name) / "metrics.jsonl")
                segment = SegmentView(
                    SegmentState.ENDED, name, self._result(self._exits.pop(name)), self._started.get(name)
                )
            else:
                segment = SegmentView()
            epochs = self.store.epoch_metrics(name, finished=status.phase.finished)
            out.append(ObservedTrial(name, spec, status, segment, epochs))
        return out

    def _result(self, exit_: Exit) -> TrialResult:
        workdir = self.store.trial_dir(exit_.name)
        result_file = workdir / RESULT_FILE
        if result_file.exists():
            text = result_file.read_text()
        else:
            log = workdir / LOG_FILE
            tail = log.read_text()[-2000:] if log.exists() else ""
            text = f"trainer {_ending(exit_.returncode)} without a result: {tail}"
        result = parse_result(text, exit_.name)
        if result.artifacts is None and result.phase != "Failed":  # no storage: the run directory
            result = result.model_copy(update={"artifacts": workdir.resolve().as_uri() + "/"})
        return result

    def create_trial(self, name: str, spec: NASTrialSpec) -> NASTrialSpec:
        return self.store.create_trial(name, spec)

    def write_status(self, name: str, status: NASTrialStatus) -> None:
        self.store.write_status(name, status)

    def start_segment(self, segment: Segment) -> None:
        if segment.trial in self.launcher.running:
            return
        workdir = self.store.trial_dir(segment.trial)
        (workdir / RESULT_FILE).unlink(missing_ok=True)  # a crash must not leave the last segment's
        try:
            self.launcher.launch(segment.input, workdir)
        except OSError as error:  # e.g. too many processes, or no space for its log
            raise Refused(f"process of {segment.trial}", "ProcessNotStarted", str(error)) from error
        self._started[segment.trial] = now_iso()
        self.console.segment_started(segment.trial, segment.starts_after)

    def stop_segment(self, name: str, ref: str) -> None:
        self.launcher.stop(name)

    def checkpoint_location(self, trial: str) -> str:
        return str(self.store.trial_dir(trial) / CHECKPOINT_FILE)

    def send(self, event: Event) -> None:
        self.console.event(event)

    def drop_live_metrics(self, name: str) -> None:
        if self.spec.metrics is not None:
            forget(self.spec.metrics.pushgateway, trial_labels(self.namespace, self.experiment, name))

    def health(self) -> list[Health]:
        return []  # metrics and results are read from the run directory

    def show_epochs(self) -> None:
        """Print the epochs the running trials' trainers have written since the last call."""
        for name in sorted(self.launcher.running):
            self.console.epoch_lines(name, self.store.trial_dir(name) / "metrics.jsonl")
