"""Trials in long-lived trainer processes: one worker (kubenas_trainer.worker) per slot, reused.

A fresh trainer process per segment pays its start every time (imports, the data set read, torch's
first optimizer and export: seconds, against often less than a second of training). Here each slot
keeps one worker process that runs segment after segment; the engine sees exactly what it sees with
LocalLauncher: the same launch / poll / stop / stop_all, the same files in each trial's directory and
the same exit statuses. A worker that dies mid-trial (a crash, the OOM killer) ends its trial with its
exit status (negative: the signal), so the trial fails with what its log says, and the slot gets a new
worker on its next launch. A worker is replaced after MAX_TRIALS_PER_WORKER trials, to bound what a
long run could leak.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from kubenas_trainer.spec import TrialSpec
from kubenas_trainer.worker import PARENT_ENV

from kubenas.local.launcher import (
    Exit,
    slot_environment,
    threads_per_trial,
    trial_environment,
    visible_gpus,
)

MAX_TRIALS_PER_WORKER = 100
CLOSE_SECONDS = 1.0  # an idle worker's time to exit once its input ends (it holds no trial: then killed)


def _read_replies(
    stream: IO[str], replies: queue.Queue[dict[str, Any] | None], news: threading.Event
) -> None:
    """The worker's replies, one JSON object a line; None once it has closed its output (died)."""
    for line in stream:
        with contextlib.suppress(ValueError):
            replies.put(json.loads(line))
            news.set()
    replies.put(None)
    news.set()


@dataclass
class _Worker:
    slot: int
    process: subprocess.Popen[str]
    replies: queue.Queue[dict[str, Any] | None] = field(default_factory=queue.Queue)
    trials: int = 0

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, request: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        self.trials += 1

    def ended(self, name: str, timeout: float) -> int | None:
        """Trial `name`'s exit status once the worker replied, or the worker's own once it died; None
        while the trial still runs after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self.replies.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if reply is None:  # output closed: the worker is gone
                self.replies.put(None)  # and stays gone for any later question
                return self.process.wait()
            if reply.get("name") == name:
                return int(reply["code"])

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def close(self, deadline: float | None = None) -> None:
        """End an idle worker: its input ends, it exits (killed if it has not by `deadline`, a
        time.monotonic() value; default CLOSE_SECONDS from now). It holds no trial: nothing is lost."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        deadline = time.monotonic() + CLOSE_SECONDS if deadline is None else deadline
        try:
            self.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class _Busy:
    worker: _Worker
    started: float


class WorkerPool:
    """Starts, watches and stops trial segments in reused worker processes, one per slot in use."""

    def __init__(
        self,
        slots: int,
        gpus: list[str] | None = None,
        log: Path | None = None,
        cpu_limit: int | None = None,
    ):
        """`log`: where the workers' own output between trials goes (a trial's goes to its trainer.log);
        `cpu_limit`: at most this many CPU threads per trial (launcher.threads_per_trial)."""
        self.slots = slots
        self.gpus = visible_gpus() if gpus is None else gpus
        self.threads = threads_per_trial(slots, cpu_limit)
        self.log = log
        self._idle: dict[int, _Worker] = {}
        self._running: dict[str, _Busy] = {}
        self.started = 0  # worker processes started
        self._news = threading.Event()  # a worker replied or died since the last wait()

    @property
    def running(self) -> set[str]:
        return set(self._running)

    def _free_slot(self) -> int:
        used = {busy.worker.slot for busy in self._running.values()}
        return next(s for s in range(self.slots + len(used) + 1) if s not in used)

    def _spawn(self, slot: int) -> _Worker:
        env = {**os.environ, **slot_environment(slot, self.gpus, self.threads), PARENT_ENV: str(os.getpid())}
        with contextlib.ExitStack() as stack:
            stderr: IO[bytes] | int = subprocess.DEVNULL
            if self.log is not None:
                stderr = stack.enter_context(self.log.open("ab"))
            process = subprocess.Popen(
                [sys.executable, "-m", "kubenas_trainer.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                text=True,
                start_new_session=True,  # a Ctrl-C reaches the runner, which stops the trials itself
            )
        worker = _Worker(slot, process)
        assert process.stdout is not None
        reader = threading.Thread(
            target=_read_replies, args=(process.stdout, worker.replies, self._news), daemon=True
        )
        reader.start()
        self.started += 1
        return worker

    def launch(self, spec: TrialSpec, workdir: Path) -> None:
        """Send the trial's segment to its slot's worker (started if there is none) unless it runs."""
        if spec.name in self._running:
            return
        slot = self._free_slot()
        request = {
            "spec": spec.model_dump_json(by_alias=True, exclude_none=True),
            "output": str(workdir),
            "resume": True,  # a relaunched or promoted trial goes on from its own checkpoint
            "env": trial_environment(spec, workdir, self.threads),
        }
        worker = self._idle.pop(slot, None)
        if worker is not None and not worker.alive():
            worker.kill()
            worker = None
        if worker is None:
            worker = self._spawn(slot)
        try:
            worker.send(request)
        except OSError:  # it died just now: one new worker, whose failure to start is the caller's
            worker.kill()
            worker = self._spawn(slot)
            worker.send(request)
        self._running[spec.name] = _Busy(worker, time.monotonic())

    def _release(self, worker: _Worker) -> None:
        """A worker whose trial has ended: kept for its slot's next trial, or ended."""
        if not worker.alive():
            worker.kill()
        elif worker.trials >= MAX_TRIALS_PER_WORKER or worker.slot in self._idle:
            worker.close()
        else:
            self._idle[worker.slot] = worker

    def poll(self) -> list[Exit]:
        ended = []
        for name, busy in list(self._running.items()):
            code = busy.worker.ended(name, timeout=0.0)
            if code is None:
                continue
            del self._running[name]
            ended.append(Exit(name, code, time.monotonic() - busy.started))
            self._release(busy.worker)
        return ended

    def stop(self, name: str, grace: float = 10.0) -> None:
        busy = self._running.pop(name, None)
        if busy is None:
            return
        worker = busy.worker
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.process.pid, signal.SIGTERM)  # the trial checkpoints, the worker carries on
        if worker.ended(name, timeout=grace) is None:
            worker.kill()
        self._release(worker)

    def wait(self, seconds: float) -> None:
        """Return after `seconds`, or as soon as a worker has replied (or died)."""
        self._news.wait(seconds)
        self._news.clear()

    def prepare(self) -> None:
        """A worker for every slot, started now: its imports overlap the runner's own start."""
        for slot in range(self.slots):
            if slot not in self._idle:
                self._idle[slot] = self._spawn(slot)

    def stop_all(self) -> None:
        for name in list(self._running):
            self.stop(name, grace=5.0)
        idle, self._idle = list(self._idle.values()), {}
        for worker in idle:  # all told at once, then given CLOSE_SECONDS together
            if worker.process.stdin is not None:
                with contextlib.suppress(OSError):
                    worker.process.stdin.close()
        deadline = time.monotonic() + CLOSE_SECONDS
        for worker in idle:
            worker.close(deadline)
