"""The operator as the cluster tests run it: `kubenas operator` in a child process.

Each OperatorProcess is one replica, like a pod: its leader-election identity ($POD_NAME) stays the same
across kill() and start(), as a container's does when the kubelet restarts it, so a lone replica takes
its own Lease back at once. The Lease lives in the test's namespace.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

_replicas = itertools.count()


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: Path,
        namespace: str,
        log: Path,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ):
        """`args`: more flags of `kubenas operator`; `env`: more environment (e.g. storage credentials)."""
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.log = log
        self.args = list(args)
        self.env = dict(env or {})
        self.identity = self.env.setdefault("POD_NAME", f"operator-{os.getpid()}-{next(_replicas)}")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PYTHONPATH": os.pathsep.join(sys.path),
            **self.env,
        }
        command = [
            sys.executable,
            "-m",
            "kubenas.cli",
            "operator",
            "--namespace",
            self.namespace,
            "--interval",
            "1",
            "--leader-election-namespace",
            self.namespace,
            *self.args,
        ]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def kill(self) -> None:
        """SIGKILL: no clean-up, no chance to finish what it was doing."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 60) -> str:
        return (
            "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""
        )

    def __enter__(self) -> OperatorProcess:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
