"""Trials as local processes: one `kubenas-trainer` per trial, each on its own GPU or CPU share."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kubenas_trainer.spec import TrialSpec


def visible_gpus() -> list[str]:
    """GPU indices reported by nvidia-smi (the control plane never imports torch to ask)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return [g for g in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


@dataclass
class _Running:
    process: subprocess.Popen[bytes]
    slot: int
    started: float


@dataclass(frozen=True)
class Exit:
    name: str
    returncode: int
    seconds: float


class LocalLauncher:
    """Starts, watches and stops trial processes; at most `slots` run at once."""

    def __init__(self, slots: int, gpus: list[str] | None = None):
        self.slots = slots
        self.gpus = visible_gpus() if gpus is None else gpus
        self.threads = max(1, (os.cpu_count() or 1) // slots)
        self._running: dict[str, _Running] = {}

    @property
    def running(self) -> set[str]:
        return set(self._running)

    def _free_slot(self) -> int:
        used = {r.slot for r in self._running.values()}
        return next(s for s in range(self.slots + len(used) + 1) if s not in used)

    def launch(self, spec: TrialSpec, workdir: Path) -> None:
        """Start the trial's process unless it already runs (idempotent)."""
        if spec.name in self._running:
            return
        slot = self._free_slot()
        env = {
            **os.environ,
            "KUBENAS_TRIAL_SPEC": spec.model_dump_json(by_alias=True, exclude_none=True),
            "KUBENAS_TRIAL_NAME": spec.name,
            "KUBENAS_NUM_THREADS": str(self.threads),
            "OMP_NUM_THREADS": str(self.threads),
            "KUBENAS_TERMINATION_LOG": str(workdir / "termination-log"),
        }
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot % len(self.gpus)]
        else:
            env["CUDA_VISIBLE_DEVICES"] = ""
        with (workdir / "trainer.log").open("ab") as log:
            process = subprocess.Popen(
                # --resume: a relaunched or promoted trial goes on from its own checkpoint.
                [sys.executable, "-m", "kubenas_trainer", "--output", str(workdir), "--resume"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._running[spec.name] = _Running(process, slot, time.monotonic())

    def poll(self) -> list[Exit]:
        """Trials whose process has ended since the last poll."""
        ended = []
        for name, run in list(self._running.items()):
            code = run.process.poll()
            if code is not None:
                del self._running[name]
                ended.append(Exit(name, code, time.monotonic() - run.started))
        return ended

    def stop(self, name: str, grace: float = 10.0) -> None:
        run = self._running.pop(name, None)
        if run is None:
            return
        _terminate(run.process, grace)

    def stop_all(self) -> None:
        for name in list(self._running):
            self.stop(name, grace=5.0)


def _terminate(process: subprocess.Popen[bytes], grace: float) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
