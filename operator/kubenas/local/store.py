"""The run directory: everything a local experiment knows, so a restart loses nothing.

<root>/<experiment>/
  experiment.yaml            the manifest as run
  status.json                the experiment's status (what `kubectl get -o yaml` would show)
  best.json                  the best trial: candidate and metrics
  trials/<trial>/trial.json  the trial (NASTrialSpec), written before it starts
  trials/<trial>/status.json its outcome (NASTrialStatus), written when it ends or pauses
  trials/<trial>/…           the trainer's own output: result.json, metrics.jsonl, logs
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from kubenas.api.experiment import NASExperiment
from kubenas.api.status import NASExperimentStatus, NASTrialSpec, NASTrialStatus
from kubenas.trials import TrialRecord, record


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
        self._finished_curves: dict[str, tuple[dict[str, float], ...]] = {}

    def trial_dir(self, name: str) -> Path:
        return self.trials_dir / name

    def save_manifest(self, experiment: NASExperiment) -> None:
        (self.root / "experiment.yaml").write_text(yaml.safe_dump(experiment.to_dict(), sort_keys=False))

    def load_status(self) -> NASExperimentStatus:
        path = self.root / "status.json"
        return (
            NASExperimentStatus.model_validate_json(path.read_text())
            if path.exists()
            else NASExperimentStatus()
        )

    def save_status(self, status: NASExperimentStatus) -> None:
        _write_json(self.root / "status.json", status.to_dict())
        if status.best is not None:
            _write_json(self.root / "best.json", status.best.to_dict())

    def create_trial(self, name: str, spec: NASTrialSpec) -> None:
        self.trial_dir(name).mkdir(parents=True, exist_ok=True)
        path = self.trial_dir(name) / "trial.json"
        if not path.exists():
            _write_json(path, spec.to_dict())

    def finish_trial(self, name: str, status: NASTrialStatus) -> None:
        _write_json(self.trial_dir(name) / "status.json", status.to_dict())

    def reopen_trial(self, name: str) -> None:
        """A paused trial goes on: it has no outcome until its trainer reports again."""
        (self.trial_dir(name) / "status.json").unlink(missing_ok=True)

    def trial_spec(self, name: str) -> NASTrialSpec:
        return NASTrialSpec.model_validate_json((self.trial_dir(name) / "trial.json").read_text())

    def records(self, running: set[str]) -> list[TrialRecord]:
        """Every recorded trial; one neither finished nor running is Pending and not launched."""
        out = []
        for spec_path in sorted(self.trials_dir.glob("*/trial.json")):
            name = spec_path.parent.name
            spec = NASTrialSpec.model_validate_json(spec_path.read_text())
            status_path = spec_path.parent / "status.json"
            if status_path.exists():
                status = NASTrialStatus.model_validate_json(status_path.read_text())
            else:
                status = NASTrialStatus(phase="Running" if name in running else "Pending")
            launched = status_path.exists() or name in running
            trial = record(spec, status, name, launched=launched)
            out.append(replace(trial, progress=self._curve(name, status.phase.finished)))
        return out

    def _curve(self, name: str, finished: bool) -> tuple[dict[str, float], ...]:
        """A trial's per-epoch metrics; a finished trial's curve is read once and kept."""
        if name in self._finished_curves:
            return self._finished_curves[name]
        curve = self.epochs_so_far(name)
        if finished:
            self._finished_curves[name] = curve
        return curve

    def epochs_so_far(self, name: str) -> tuple[dict[str, float], ...]:
        """The per-epoch validation metrics the trainer has written so far (whole lines only)."""
        path = self.trial_dir(name) / "metrics.jsonl"
        if not path.exists():
            return ()
        text = path.read_text()
        return tuple(json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines())
