"""Trials as local processes, each on its own GPU or CPU share: the launcher protocol the local backend
drives, and LocalLauncher, a fresh `kubenas-trainer` process per segment (`kubenas run --fresh-processes`;
the default is kubenas.local.workers.WorkerPool, long-lived trainer processes)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

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


@dataclass(frozen=True)
class Exit:
    name: str
    returncode: int
    seconds: float


class Launcher(Protocol):
    """Runs trial segments as local processes; the local backend's view of them."""

    @property
    def running(self) -> set[str]:
        """The trials whose segment runs now."""

    def launch(self, spec: TrialSpec, workdir: Path) -> None:
        """Start the trial's segment unless it already runs (idempotent); OSError when it cannot."""

    def poll(self) -> list[Exit]:
        """Trials whose segment has ended since the last poll, with its exit status."""

    def stop(self, name: str, grace: float = 10.0) -> None:
        """Stop the trial's segment (SIGTERM: it checkpoints; killed after `grace` seconds); it is no
        longer running on return, and poll() never reports it."""

    def stop_all(self) -> None:
        """Stop every segment and release every process."""

    def prepare(self) -> None:
        """Get ready for the first segments (start what they will run in) before they are launched."""

    def wait(self, seconds: float) -> None:
        """Return after `seconds`, or sooner once a segment may have ended."""


def threads_per_trial(slots: int, cpu_limit: int | None = None) -> int:
    """CPU threads of one trial: the machine's cores shared among `slots` trials, at most the
    template's CPU limit (a trial's share on a cluster), at least one."""
    share = max(1, (os.cpu_count() or 1) // slots)
    return share if cpu_limit is None else max(1, min(share, cpu_limit))


def trial_environment(spec: TrialSpec, workdir: Path, threads: int) -> dict[str, str]:
    """What a trial's trainer finds in its environment, besides the spec (whatever process runs it)."""
    return {
        "KUBENAS_TRIAL_NAME": spec.name,
        "KUBENAS_NUM_THREADS": str(threads),
        "KUBENAS_TERMINATION_LOG": str(workdir / "termination-log"),
    }


def slot_environment(slot: int, gpus: list[str], threads: int) -> dict[str, str]:
    """A process's GPU (its slot's, round robin; none without GPUs) and CPU threads."""
    return {
        "OMP_NUM_THREADS": str(threads),
        "CUDA_VISIBLE_DEVICES": gpus[slot % len(gpus)] if gpus else "",
    }


@dataclass
class _Running:
    process: subprocess.Popen[bytes]
    slot: int
    started: float


class LocalLauncher:
    """Starts, watches and stops trial processes; at most `slots` run at once."""

    def __init__(self, slots: int, gpus: list[str] | None = None, cpu_limit: int | None = None):
        self.slots = slots
        self.gpus = visible_gpus() if gpus is None else gpus
        self.threads = threads_per_trial(slots, cpu_limit)
        self._running: dict[str, _Running] = {}
        self.started = 0  # processes started

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
            **trial_environment(spec, workdir, self.threads),
            **slot_environment(slot, self.gpus, self.threads),
        }
        with (workdir / "trainer.log").open("ab") as log:
            process = subprocess.Popen(
                # --resume: a relaunched or promoted trial goes on from its own checkpoint.
                [sys.executable, "-m", "kubenas_trainer", "--output", str(workdir), "--resume"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started += 1
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

    def prepare(self) -> None:
        """Nothing: every segment starts its own process."""

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)


def _terminate(process: subprocess.Popen[bytes], grace: float) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
