"""One experiment's recorded data, read back for inspection (`kubenas report`, `kubenas status`).

A local run directory (see kubenas.local.store for its layout) and a cluster's NASExperiment with its
NASTrials both load into the same frozen ExperimentData, so whatever presents an experiment does not
care where it ran. Loading never imports torch or matplotlib.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kubenas.api.experiment import NASExperimentSpec
from kubenas.api.manifest import load_manifest
from kubenas.api.status import NASExperimentStatus, NASTrialSpec, NASTrialStatus


@dataclass(frozen=True)
class TrialData:
    """One trial: its spec, its status, and its per-epoch validation metrics.

    `epochs` are the metrics.jsonl rows in order (each has "epoch", 1-based, and the metrics of that
    epoch). A trial that started from another trial's checkpoint (PBT, MIHA: spec.start_from) repeats
    that trial's rows first; `inherited_epochs` counts them, so the epochs this trial trained itself are
    epochs[inherited_epochs:].
    """

    name: str
    spec: NASTrialSpec
    status: NASTrialStatus
    epochs: list[dict[str, float]]
    inherited_epochs: int = 0

    @property
    def own_epochs(self) -> int:
        """Epochs this trial trained itself (not copied from a start_from checkpoint)."""
        return max(len(self.epochs) - self.inherited_epochs, 0)


@dataclass(frozen=True)
class ExperimentData:
    """An experiment: name, spec, status, and its trials ordered by index."""

    name: str
    spec: NASExperimentSpec
    status: NASExperimentStatus
    trials: list[TrialData]

    def trial(self, name: str) -> TrialData | None:
        return next((t for t in self.trials if t.name == name), None)


def read_metrics_jsonl(path: Path) -> list[dict[str, float]]:
    """The complete rows of a metrics.jsonl file (a line still being written is left out); [] if none."""
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines() if line.strip()]


def inherited_rows(rows: list[dict[str, float]], parent_rows: list[dict[str, float]]) -> int:
    """How many leading rows a trial copied from its start_from trial's history (equal rows)."""
    count = 0
    for own, theirs in zip(rows, parent_rows, strict=False):
        if own != theirs:
            break
        count += 1
    return count


def with_inheritance(trials: list[TrialData]) -> list[TrialData]:
    """The trials with inherited_epochs set from their start_from trials' rows (ordered by index)."""
    by_name = {t.name: t for t in trials}
    out = []
    for trial in sorted(trials, key=lambda t: t.spec.index):
        parent = by_name.get(trial.spec.start_from or "")
        inherited = inherited_rows(trial.epochs, parent.epochs) if parent is not None else 0
        out.append(TrialData(trial.name, trial.spec, trial.status, trial.epochs, inherited_epochs=inherited))
    return out


def load_run_dir(path: Path) -> ExperimentData:
    """The experiment recorded in a local run directory (<root>/<experiment>/ of `kubenas run`).

    FileNotFoundError when `path` holds no experiment.yaml; a trial without status.json yet is Pending.
    """
    manifest_path = path / "experiment.yaml"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{path}: not a kubenas run directory (no experiment.yaml)")
    experiment = load_manifest(manifest_path)
    status_path = path / "status.json"
    status = (
        NASExperimentStatus.model_validate_json(status_path.read_text())
        if status_path.exists()
        else NASExperimentStatus()
    )
    trials = []
    for spec_path in (path / "trials").glob("*/trial.json"):
        trial_dir = spec_path.parent
        trial_status_path = trial_dir / "status.json"
        trials.append(
            TrialData(
                name=trial_dir.name,
                spec=NASTrialSpec.model_validate_json(spec_path.read_text()),
                status=(
                    NASTrialStatus.model_validate_json(trial_status_path.read_text())
                    if trial_status_path.exists()
                    else NASTrialStatus()
                ),
                epochs=read_metrics_jsonl(trial_dir / "metrics.jsonl"),
            )
        )
    return ExperimentData(
        name=experiment.metadata.name,
        spec=experiment.spec,
        status=status,
        trials=with_inheritance(trials),
    )
