"""The run directory: everything a local experiment knows, so a restart loses nothing.

<root>/<experiment>/
  experiment.yaml            the manifest as run
  status.json                the experiment's status (what `kubectl get -o yaml` would show)
  best.json                  the best trial: candidate and metrics
  trials/<trial>/trial.json  the trial (NASTrialSpec), written before it starts
  trials/<trial>/status.json its status (NASTrialStatus), written on every transition
  trials/<trial>/…           the trainer's own output: result.json, metrics.jsonl, checkpoint, logs
  tensorboard/               every trial's TensorBoard run and the HParams config (local/tensorboard.py)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from kubenas.api.experiment import NASExperiment
from kubenas.api.status import NASExperimentStatus, NASTrialSpec, NASTrialStatus
from kubenas.local import tensorboard


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: a reader (or a restart) never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


class RunStore:
    def __init__(self, root: Path):
        self.root = root
        self.trials_dir = root / "trials"
        self.trials_dir.mkdir(parents=True, exist_ok=True)
        self._finished_epochs: dict[str, tuple[dict[str, float], ...]] = {}
        self._saved_status: dict[str, Any] | None = None
        # This store is the only writer of trial.json and status.json: what it wrote (or read once
        # after a restart) is what is on disk, so the runner's passes, several a second, need not
        # parse and validate every trial's files again.
        self._specs: dict[str, NASTrialSpec] = {}
        self._statuses: dict[str, NASTrialStatus] = {}

    def trial_dir(self, name: str) -> Path:
        return self.trials_dir / name

    def save_manifest(self, experiment: NASExperiment) -> None:
        (self.root / "experiment.yaml").write_text(yaml.safe_dump(experiment.to_dict(), sort_keys=False))
        tensorboard.write_config(self.root, experiment.spec)
        for trial_dir in self.trials_dir.iterdir():  # trials recorded before the log directory existed
            tensorboard.link_trial(self.root, trial_dir)

    def load_status(self) -> NASExperimentStatus:
        path = self.root / "status.json"
        return (
            NASExperimentStatus.model_validate_json(path.read_text())
            if path.exists()
            else NASExperimentStatus()
        )

    def save_status(self, status: NASExperimentStatus) -> None:
        """Write the experiment's status (and best trial) when it changed: the runner saves it after
        every pass, several a second, and most passes change nothing."""
        document = status.to_dict()
        if document == self._saved_status:
            return
        _write_json(self.root / "status.json", document)
        if status.best is not None:
            _write_json(self.root / "best.json", status.best.to_dict())
        self._saved_status = document

    def create_trial(self, name: str, spec: NASTrialSpec) -> NASTrialSpec:
        """Record the trial unless it exists; the spec recorded (an existing trial's is the truth)."""
        self.trial_dir(name).mkdir(parents=True, exist_ok=True)
        tensorboard.link_trial(self.root, self.trial_dir(name))
        path = self.trial_dir(name) / "trial.json"
        if path.exists():
            return self._spec(name, path)
        _write_json(path, spec.to_dict())
        self._specs[name] = spec
        return spec

    def write_status(self, name: str, status: NASTrialStatus) -> None:
        _write_json(self.trial_dir(name) / "status.json", status.to_dict())
        self._statuses[name] = status

    def _spec(self, name: str, path: Path) -> NASTrialSpec:
        if name not in self._specs:
            self._specs[name] = NASTrialSpec.model_validate_json(path.read_text())
        return self._specs[name]

    def _status(self, name: str, path: Path) -> NASTrialStatus:
        if name not in self._statuses:
            if not path.exists():
                return NASTrialStatus()
            self._statuses[name] = NASTrialStatus.model_validate_json(path.read_text())
        return self._statuses[name]

    def trials(self) -> list[tuple[str, NASTrialSpec, NASTrialStatus]]:
        """Every recorded trial with its status (Pending until one is written)."""
        out = []
        for spec_path in sorted(self.trials_dir.glob("*/trial.json")):
            name = spec_path.parent.name
            status = self._status(name, spec_path.parent / "status.json")
            out.append((name, self._spec(name, spec_path), status))
        return out

    def epoch_metrics(self, name: str, finished: bool) -> tuple[dict[str, float], ...]:
        """The per-epoch validation metrics the trainer has written so far (whole lines only); a
        finished trial's are read once and kept."""
        if name in self._finished_epochs:
            return self._finished_epochs[name]
        path = self.trial_dir(name) / "metrics.jsonl"
        rows: tuple[dict[str, float], ...] = ()
        if path.exists():
            text = path.read_text()
            rows = tuple(json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines())
        if finished:
            self._finished_epochs[name] = rows
        return rows
