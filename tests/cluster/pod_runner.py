"""Run one pod's containers as local processes and report their status like a kubelet."""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .pod_env import container_argv, container_env, host_paths, map_paths
from .pod_status import ContainerResult, now, running, terminated
from .procs import exit_code, signal_group, spawn, tail

Json = dict[str, Any]
log = logging.getLogger(__name__)

TERMINATION_LOG_ENV = "KUBENAS_TERMINATION_LOG"
MESSAGE_LIMIT = 4096  # kubelet reads at most 4 KiB of a termination-message file
FALLBACK_LIMIT, FALLBACK_LINES = 2048, 80  # ... and this much log for FallbackToLogsOnError


class PodRun:
    """One pod on the local node: spawn its containers, wait for them, report the status.

    Files live in ``dir``: ``<container>.log`` (stdout+stderr), ``<container>.termination-log``
    (the program finds its path in ``$KUBENAS_TERMINATION_LOG``) and ``work/`` (the cwd).
    """

    def __init__(
        self,
        pod: Json,
        root: Path,
        base_env: Mapping[str, str],
        patch_status: Callable[[Json], None],
    ) -> None:
        meta = pod["metadata"]
        self.pod = pod
        self.key = f"{meta['namespace']}/{meta['name']}"
        self.dir = root / f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"
        self.done = threading.Event()  # set once the final status was reported (or skipped)
        self._base_env = base_env
        self._patch = patch_status
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._killed = False
        # The thread also owns the children: they get SIGKILL if it dies (see procs.spawn).
        self._thread = threading.Thread(target=self._run, name=f"pod {self.key}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def log(self, container: str) -> Path:
        return self.dir / f"{container}.log"

    def termination_log(self, container: str) -> Path:
        return self.dir / f"{container}.termination-log"

    def kill(self, grace: float) -> None:
        """SIGTERM every container, SIGKILL after ``grace`` s; wait for the final status."""
        with self._lock:
            self._killed = True
            procs = list(self._procs.values())
        for p in procs:
            signal_group(p, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.0, deadline - time.monotonic()))
            signal_group(p, signal.SIGKILL)
        self.done.wait(30)

    def _run(self) -> None:
        try:
            self._run_containers()
        except Exception:
            log.exception("pod %s: agent error", self.key)
        finally:
            self.done.set()

    def _run_containers(self) -> None:
        containers = self.pod["spec"]["containers"]
        (self.dir / "work").mkdir(parents=True, exist_ok=True)
        start = now()
        results: dict[str, ContainerResult] = {}
        with self._lock:
            if self._killed:
                return
            for c in containers:
                try:
                    self._procs[c["name"]] = self._spawn(c)
                except (OSError, ValueError) as e:
                    results[c["name"]] = ContainerResult(128, str(e), start, now(), "StartError")
        if results:  # some container could not start: the pod fails as a whole
            for p in self._procs.values():
                signal_group(p, signal.SIGKILL)
        else:
            self._patch(running(self.pod, start))
        for c in containers:
            if proc := self._procs.get(c["name"]):
                code = exit_code(proc.wait())
                results[c["name"]] = ContainerResult(code, self._message(c, code), start, now())
        self._patch(terminated(self.pod, start, results))

    def _spawn(self, container: Json) -> subprocess.Popen[bytes]:
        name = container["name"]
        self.termination_log(name).write_bytes(b"")
        base = {
            **self._base_env,
            "HOSTNAME": self.pod["metadata"]["name"],
            TERMINATION_LOG_ENV: str(self.termination_log(name)),
        }
        env = container_env(self.pod, container, base)
        argv = container_argv(container, env)
        mounts = host_paths(self.pod, container)
        for path in mounts.values():
            Path(path).mkdir(parents=True, exist_ok=True)  # as hostPath type DirectoryOrCreate
        env = {k: map_paths(v, mounts) for k, v in env.items()}
        argv = [map_paths(a, mounts) for a in argv]
        return spawn(argv, self.log(name), env=env, cwd=self.dir / "work")

    def _message(self, container: Json, code: int) -> str:
        name = container["name"]
        with open(self.termination_log(name), "rb") as f:
            message = f.read(MESSAGE_LIMIT).decode(errors="replace")
        policy = container.get("terminationMessagePolicy")
        if not message and code != 0 and policy == "FallbackToLogsOnError":
            lines = tail(self.log(name), 16 * FALLBACK_LIMIT).splitlines()[-FALLBACK_LINES:]
            message = "\n".join(lines)[-FALLBACK_LIMIT:]
        return message
