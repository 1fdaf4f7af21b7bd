"""A simulated trainer behind both real backends, for unit tests of the one executor.

What cannot run in a unit test is replaced, and only that: `FakeKubeApi` stands in for the API server
(the cluster tests run the real one) and `FakeLauncher` for the trainer processes (the e2e tests run
real ones). The Kubernetes and local backends themselves, the engine and the run directory are real.
Every segment a backend starts ends when `finish_all()` is called, with the result a trainer would
report: a deterministic function of the candidate and of the epochs it reaches.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from kubenas.k8s.labels import TRAINER_CONTAINER
from kubenas.local.launcher import Exit
from kubenas_trainer.spec import Candidate, TrialResult, TrialSpec

SPLIT = "0123456789ab"


class SimulatedTrainer:
    """Each trial's epochs so far (its checkpoint), and the result of training one segment."""

    def __init__(self) -> None:
        self.epochs: dict[str, int] = {}
        self.curves: dict[str, list[float]] = {}

    @staticmethod
    def gain(candidate: Candidate) -> float:
        digest = hashlib.sha256(candidate.key().encode()).digest()
        return 0.05 + digest[0] / 255 * 0.2

    def run(self, spec: TrialSpec) -> TrialResult:
        """Train `spec` from its own checkpoint, else from startFrom's, up to stopAtEpoch or the end."""
        total = spec.candidate.hyperparameters.epochs or spec.training.epochs
        if spec.name in self.epochs:
            curve = list(self.curves[spec.name])
        elif spec.start_from is not None:
            parent = spec.start_from.rstrip("/").split("/")[-2]  # <...>/<trial>/checkpoint.pt, any backend
            curve = list(self.curves[parent])
        else:
            curve = []
        stop = min(spec.stop_at_epoch or total, total)
        while len(curve) < stop:
            curve.append(round(1 - 1 / (1 + self.gain(spec.candidate) * (len(curve) + 1)), 6))
        self.epochs[spec.name], self.curves[spec.name] = len(curve), curve
        paused = stop < total
        best = len(curve) - 1 if paused else max(range(len(curve)), key=lambda e: curve[e])
        return TrialResult(
            name=spec.name,
            phase="Paused" if paused else "Succeeded",
            metrics={"accuracy": curve[best], "loss": 1 - curve[best]},
            epochs=len(curve),
            best_epoch=best + 1,
            curve=curve,
            split_fingerprint=SPLIT,
            artifacts=spec.storage.uri if spec.storage else None,
            message=f"paused after epoch {len(curve)} of {total}" if paused else "",
        )


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch, as the API server applies a merge patch to a status."""
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_patch(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class FakeKubeApi:
    """In-memory NASTrials, Jobs and pods with KubeApi's idempotent calls (a mock of the API server)."""

    def __init__(self, trainer: SimulatedTrainer) -> None:
        self.trainer = trainer
        self.trials: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.pods: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []

    def list_trials(self, namespace: str, experiment: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(t) for t in self.trials.values()]

    def list_jobs(self, namespace: str, experiment: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(j) for j in self.jobs.values()]

    def list_pods(self, namespace: str, experiment: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(p) for p in self.pods.values()]

    def create_trial(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if name not in self.trials:
            self.calls.append(f"create trial {name}")
            self.trials[name] = {
                **copy.deepcopy(body),
                "metadata": {**body["metadata"], "uid": f"uid-{name}"},
            }
        return copy.deepcopy(self.trials[name])

    def create_job(self, namespace: str, body: dict[str, Any]) -> bool:
        name = body["metadata"]["name"]
        if name in self.jobs:
            return False
        self.calls.append(f"create job {name}")
        self.jobs[name] = {**copy.deepcopy(body), "status": {"startTime": "t0"}}
        labels = body["spec"]["template"]["metadata"]["labels"]
        self.pods[name] = {
            "metadata": {"labels": {**labels, "job-name": name}},
            "status": {"phase": "Pending"},
        }
        return True

    def delete_job(self, namespace: str, name: str) -> None:
        self.calls.append(f"delete job {name}")
        self.jobs.pop(name, None)
        self.pods.pop(name, None)

    def patch_trial_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.calls.append(f"patch trial {name}")
        trial = self.trials[name]
        trial["status"] = merge_patch(trial.get("status", {}), status)

    def patch_experiment_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.calls.append(f"patch experiment {name}")

    def get_experiment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return None

    def finish_all(self) -> None:
        """Every Job that has not ended completes, its pod reporting the simulated result."""
        for name, job in self.jobs.items():
            if job["status"].get("conditions"):
                continue
            env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
            result = self.trainer.run(TrialSpec.model_validate_json(env["KUBENAS_TRIAL_SPEC"]))
            job["status"]["conditions"] = [{"type": "Complete", "status": "True"}]
            job["status"]["completionTime"] = "2026-01-01T00:00:01Z"
            terminated = {"exitCode": 0, "message": result.to_termination_message(), "finishedAt": "t1"}
            self.pods[name]["status"] = {
                "phase": "Succeeded",
                "containerStatuses": [{"name": TRAINER_CONTAINER, "state": {"terminated": terminated}}],
            }


class FakeLauncher:
    """LocalLauncher's interface with the simulated trainer instead of processes (a mock of them)."""

    def __init__(self, trainer: SimulatedTrainer) -> None:
        self.trainer = trainer
        self._running: dict[str, tuple[TrialSpec, Path]] = {}
        self._ended: list[Exit] = []
        self.launched: list[str] = []

    @property
    def running(self) -> set[str]:
        return set(self._running)

    def launch(self, spec: TrialSpec, workdir: Path) -> None:
        if spec.name not in self._running:
            self.launched.append(spec.name)
            self._running[spec.name] = (spec, workdir)

    def poll(self) -> list[Exit]:
        ended, self._ended = self._ended, []
        return ended

    def stop(self, name: str, grace: float = 10.0) -> None:
        self._running.pop(name, None)

    def stop_all(self) -> None:
        self._running.clear()

    def finish_all(self) -> None:
        """Every running trainer ends, writing its result and metrics as the real one does."""
        for name, (spec, workdir) in sorted(self._running.items()):
            result = self.trainer.run(spec)
            (workdir / "result.json").write_text(json.dumps(result.to_dict()))
            rows = [{"epoch": e + 1, "accuracy": a} for e, a in enumerate(result.curve)]
            (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            self._ended.append(Exit(name, 0, 0.0))
        self._running.clear()
