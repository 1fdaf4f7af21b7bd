"""A ``kubectl`` bound to one binary and one kubeconfig."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


class KubectlError(subprocess.CalledProcessError):
    """A failed kubectl call; ``str()`` includes its stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{self.stderr}"


@dataclass(frozen=True)
class Kubectl:
    """Callable: ``kubectl("get", "pods", "-o", "json")`` -> CompletedProcess (text)."""

    binary: Path
    kubeconfig: Path

    def __call__(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        argv = [os.fspath(self.binary), "--kubeconfig", os.fspath(self.kubeconfig), *args]
        done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise KubectlError(done.returncode, argv, done.stdout, done.stderr)
        return done
