"""Synthetic but realistic run directories, written through the local runner's own RunStore.

Candidates are sampled from the manifest's search space, curves saturate towards a candidate-dependent
ceiling with noise, and statuses, metrics.jsonl rows and timestamps have the fields and shapes the local
runner writes. `kubenas report` reads them like a real run, without any training, so the figure tests
and the report-time benchmark (benchmarks/report_time.py) take seconds.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from kubenas.api.experiment import NASExperiment
from kubenas.api.status import (
    BestTrial,
    ExperimentPhase,
    NASExperimentStatus,
    NASTrialSpec,
    NASTrialStatus,
    ParetoMember,
    TrialCounts,
    TrialPhase,
)
from kubenas.local.store import RunStore
from kubenas.space.sampling import sample_candidate

START = datetime(2026, 1, 1, tzinfo=UTC)
MODES = ("random", "asha", "pbt", "nsga2")


def _time(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def manifest(name: str, mode: str, epochs: int) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "objective": {"metric": "accuracy"},
        "searchSpace": {
            "layers": {
                "count": {"min": 1, "max": 3},
                "units": {"values": [32, 64, 128, 256]},
                "activations": ["relu", "tanh", "gelu"],
                "dropout": {"min": 0.0, "max": 0.3},
            },
            "hyperparameters": {
                "learningRate": {"min": 0.0003, "max": 0.03, "log": True},
                "optimizers": ["adam", "adamw", "sgd"],
                "batchSize": {"values": [32, 64, 128]},
            },
        },
        "strategy": {"name": "random", "seed": 1},
        "budget": {"maxTrials": 100000, "parallelTrials": 4},
        "training": {"dataset": "digits", "epochs": epochs},
    }
    if mode == "asha":
        spec["earlyStopping"] = {"rule": "asha", "minEpochs": 1, "reductionFactor": 3}
    elif mode == "pbt":
        spec["strategy"] = {"name": "pbt", "seed": 1, "settings": {"populationSize": 4, "interval": 2}}
    elif mode == "nsga2":
        objectives = [{"metric": "accuracy"}, {"metric": "trainingSeconds"}]
        spec["strategy"] = {"name": "nsga2", "seed": 1, "settings": {"objectives": objectives}}
    return {
        "apiVersion": "kubenas.dev/v1alpha1",
        "kind": "NASExperiment",
        "metadata": {"name": name},
        "spec": spec,
    }


@dataclass
class _Trial:
    name: str
    spec: NASTrialSpec
    rows: list[dict[str, float]]
    phase: TrialPhase
    start: float
    end: float


def _rows(
    rng: np.random.Generator, epochs: int, ceiling: float, seconds: float, first: int = 1, start: float = 0.1
) -> list[dict[str, float]]:
    rows, total = [], 0.0
    for epoch in range(first, epochs + 1):
        accuracy = float(
            np.clip(ceiling - (ceiling - start) * math.exp(-epoch / 2.5) + rng.normal(0, 0.01), 0, 1)
        )
        epoch_seconds = float(seconds * rng.uniform(0.9, 1.1))
        total += epoch_seconds
        rows.append(
            {
                "epoch": epoch,
                "accuracy": accuracy,
                "f1": accuracy - 0.005,
                "precision": accuracy,
                "recall": accuracy - 0.003,
                "loss": float(-math.log(max(accuracy, 1e-3)) + 0.05),
                "trainLoss": float(-math.log(max(accuracy, 1e-3))),
                "learningRate": 0.01,
                "epochSeconds": epoch_seconds,
                "samplesPerSecond": 1437 / epoch_seconds,
                "trainingSeconds": total,
                "gpuUtilization": float(rng.uniform(20, 95)),
                "gpuPowerWatts": float(rng.uniform(80, 300)),
            }
        )
    return rows


def write_run_dir(
    root: Path, trials: int, mode: str = "random", seed: int = 0, name: str = "synthetic"
) -> Path:
    """Write a finished experiment of `trials` trials into root/name (mode: one of MODES); its path.

    random and nsga2 train every trial for 9 epochs; asha pauses trials at rungs 1 and 3 and stops all
    but the top third of each rung; pbt runs generations of 4 members of 2 epochs, each member after
    the first generation continuing (start_from) the best member's checkpoint, with a note.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    epochs = 9 if mode != "pbt" else 2 * math.ceil(trials / 4)
    experiment = NASExperiment.model_validate(manifest(name, mode, epochs))
    store = RunStore(root / name)
    store.save_manifest(experiment)
    rng = np.random.default_rng(seed)
    made: list[_Trial] = []
    clock = 0.0
    for index in range(trials):
        candidate = sample_candidate(experiment.spec.search_space, rng)
        width = sum(layer.units for layer in candidate.architecture.layers)
        ceiling = float(np.clip(0.8 + 0.05 * math.log2(width / 32) + rng.normal(0, 0.05), 0.3, 0.995))
        seconds = 0.02 + width / 4000
        start_from, note, first, trained = None, "", 1, epochs
        phase = TrialPhase.SUCCEEDED
        if mode == "asha":
            trained = 1 if index % 9 not in (0, 4, 8) else (3 if index % 9 != 0 else 9)
            phase = TrialPhase.SUCCEEDED if trained == 9 else TrialPhase.STOPPED
        elif mode == "pbt":
            generation, member = divmod(index, 4)
            trained = 2 * (generation + 1)
            first = 2 * generation + 1
            phase = TrialPhase.SUCCEEDED if trained == epochs else TrialPhase.STOPPED
            if generation:
                previous = made[(generation - 1) * 4 : generation * 4]
                best = max(previous, key=lambda t: t.rows[-1]["accuracy"])
                start_from = best.name
                candidate = best.spec.candidate
                note = (
                    f"PBT generation {generation}, member {member}: {name}-{index - 4} is replaced by a copy "
                    f"of {best.name}\nhyperparameters.learningRate: 0.01 -> 0.012 (x1.2)"
                )
        if mode != "pbt" and index % 17 == 5:
            phase, trained = TrialPhase.FAILED, 0
        spec = NASTrialSpec(
            experiment=name,
            index=index,
            candidate_key=candidate.key(),
            seed=index,
            candidate=candidate,
            start_from=start_from,
            stop_at_epoch=trained if mode == "pbt" and phase is TrialPhase.STOPPED else None,
            note=note,
        )
        rows = _rows(rng, trained, ceiling, seconds, first=first)
        if start_from is not None:
            parent = next(t for t in made if t.name == start_from)
            rows = parent.rows + rows
        start = clock if mode != "pbt" else 10.0 * (index // 4)
        clock += 1.0 + seconds * max(trained, 1)
        made.append(_Trial(f"{name}-{index}", spec, rows, phase, start, start + 2.0 + seconds * trained))
    best_trial: _Trial | None = None
    phases = Counter(str(t.phase).lower() for t in made)
    counts = TrialCounts(created=trials, **phases)
    for trial in made:
        store.create_trial(trial.name, trial.spec)
        status = _status(trial)
        store.write_status(trial.name, status)
        with (store.trial_dir(trial.name) / "metrics.jsonl").open("w") as log:
            log.writelines(json.dumps(row) + "\n" for row in trial.rows)
        value = status.objective_value
        if value is not None and (best_trial is None or value > best_trial.rows[-1]["accuracy"]):
            best_trial = trial
    pareto = None
    if mode == "nsga2":
        pareto = [
            ParetoMember(trial=t.name, metrics={"accuracy": t.rows[-1]["accuracy"]})
            for t in made
            if t.phase is TrialPhase.SUCCEEDED
        ][:20]
    store.save_status(
        NASExperimentStatus(
            phase=ExperimentPhase.SUCCEEDED,
            progress=f"{trials}/{trials}",
            trials=counts,
            best=(
                BestTrial(
                    trial=best_trial.name,
                    objective_value=best_trial.rows[-1]["accuracy"],
                    candidate=best_trial.spec.candidate,
                    metrics={"accuracy": best_trial.rows[-1]["accuracy"]},
                )
                if best_trial is not None
                else None
            ),
            pareto_front=pareto,
            start_time=_time(0),
            completion_time=_time(max(t.end for t in made)) if made else None,
        )
    )
    return root / name


def _status(trial: _Trial) -> NASTrialStatus:
    common = {
        "start_time": _time(trial.start),
        "completion_time": _time(trial.end),
        "epochs": len(trial.rows),
    }
    if trial.phase is TrialPhase.FAILED:
        return NASTrialStatus(phase=TrialPhase.FAILED, reason="TrainingFailed", message="diverged", **common)
    last = trial.rows[-1]
    metrics = {k: v for k, v in last.items() if k != "epoch"}
    if trial.phase is TrialPhase.SUCCEEDED:
        width = sum(layer.units for layer in trial.spec.candidate.architecture.layers)
        metrics |= {
            "parameters": float(64 * width + width * width // 4),
            "flops": float(2 * (64 * width + width * width // 4)),
            "peakMemoryBytes": float(2**20 * (300 + width)),
            "inferenceSecondsPerSample": 1e-6 * width / 32,
        }
    return NASTrialStatus(
        phase=trial.phase,
        objective_value=last["accuracy"],
        metrics=metrics,
        curve=[round(r["accuracy"], 6) for r in trial.rows],
        message="" if trial.phase is TrialPhase.SUCCEEDED else f"stopped after epoch {len(trial.rows)}",
        **common,
    )
