"""kubenas-trainer as a long-lived worker: trial after trial in one process (the local runner's pool).

A fresh trainer process pays seconds before its first step (importing torch and scikit-learn, reading
the data set, torch's first optimizer and export) for often less than a second of training. A worker
pays them once: torch stays imported and the experiment's split stays read (kubenas_trainer.data keeps
the last ones), while each trial still runs exactly as `python -m kubenas_trainer --output DIR --resume`
would (kubenas_trainer.__main__.run_trial: same result.json, metrics, checkpoints, exit status), its
stdout and stderr appended to DIR/trainer.log and its environment (KUBENAS_TRIAL_NAME, ...) set for it.

Protocol, one JSON object a line: requests on stdin, {"spec": TRIAL SPEC JSON TEXT, "output": DIR,
"resume": bool, "env": {NAME: VALUE}}; for each, a reply on stdout when the trial has ended,
{"name": TRIAL, "code": EXIT STATUS}. End of stdin ends the worker. SIGTERM stops the trial in progress
as it stops a trainer process (a checkpoint, result Interrupted, status 143), and the worker carries on;
idle, the worker ignores it. On Linux the worker gets SIGTERM when its parent dies, so a killed runner
leaves no worker behind (the trial in progress checkpoints first).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import IO, Any

from kubenas_trainer.__main__ import run_trial
from kubenas_trainer.stopping import StopFlag

PR_SET_PDEATHSIG = 1
PARENT_ENV = "KUBENAS_WORKER_PARENT"


def _die_with_parent() -> None:
    """Ask Linux for SIGTERM when the parent dies; exit now if it already has."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: stdin's end still ends an idle worker
        return
    parent = os.environ.get(PARENT_ENV)
    if parent is not None and os.getppid() != int(parent):
        sys.exit(0)


@contextlib.contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """Output of the block appended to log: sys.stdout and sys.stderr (print, tracebacks) and file
    descriptors 1 and 2 (native code, e.g. torch's warnings)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log.open("a", buffering=1) as stream:
        os.dup2(stream.fileno(), 1)
        os.dup2(stream.fileno(), 2)
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                yield
        finally:
            stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _fresh_process_state() -> None:
    """What a new process would not carry over from the last trial: its garbage, cached GPU memory
    and peak memory readings (seeds, threads and determinism are set by every trial itself)."""
    gc.collect()
    if "torch" in sys.modules:
        import torch

        from kubenas_trainer import profiling

        if torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
            torch.cuda.empty_cache()
        profiling.reset_peak_memory()


def warm_up() -> None:
    """Import what every trial needs (torch, the training loop, scikit-learn's splitter) while the
    runner is still busy with its own start, before the first trial arrives."""
    import sklearn.model_selection  # noqa: F401

    import kubenas_trainer.train  # noqa: F401


class Worker:
    """Runs the trials it is sent, one at a time, and says how each ended."""

    def __init__(self, replies: IO[str]) -> None:
        self.replies = replies
        self.current: StopFlag | None = None  # the trial in progress, for SIGTERM

    def on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if self.current is not None:
            self.current.raised = True

    def run(self, request: dict[str, Any]) -> int:
        output = Path(request["output"])
        output.mkdir(parents=True, exist_ok=True)
        os.environ.update({str(k): str(v) for k, v in request.get("env", {}).items()})
        os.environ["KUBENAS_TRIAL_SPEC"] = request["spec"]
        _fresh_process_state()
        self.current = StopFlag()
        try:
            with _output_to(output / "trainer.log"):
                try:
                    return run_trial(None, output, bool(request.get("resume", False)), self.current)
                except BaseException:  # run_trial reports what it can; anything past it is a failure
                    traceback.print_exc()
                    return 1
        finally:
            self.current = None

    def serve(self, requests: IO[str]) -> None:
        for line in requests:
            if not line.strip():
                continue
            request = json.loads(line)
            code = self.run(request)
            name = request.get("env", {}).get("KUBENAS_TRIAL_NAME", "unknown")
            self.replies.write(json.dumps({"name": name, "code": code}) + "\n")
            self.replies.flush()


def main() -> int:
    """Warm up, then serve trials until stdin ends; its own messages (a line as it starts) go to stderr."""
    _die_with_parent()
    replies = os.fdopen(os.dup(1), "w")  # the reply channel; fd 1 then belongs to the trials
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # a stray print between trials must not corrupt the replies
    os.close(devnull)
    worker = Worker(replies)
    signal.signal(signal.SIGTERM, worker.on_sigterm)
    print(f"kubenas-trainer worker {os.getpid()} started", file=sys.stderr, flush=True)
    warm_up()
    try:
        worker.serve(sys.stdin)
    except BrokenPipeError:  # the runner is gone
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
