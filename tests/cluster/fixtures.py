"""``cluster()``: the Kubernetes cluster a cluster test runs against.

With ``$KUBENAS_TEST_KUBECONFIG`` set, that existing cluster (e.g. kind) is used as is;
otherwise a local :class:`ControlPlane` plus one :class:`NodeAgent` is started and torn down.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .binaries import ENV_BIN, bin_dir
from .controlplane import ControlPlane
from .kubectl import Kubectl
from .node_agent import NodeAgent

KUBECONFIG_ENV = "KUBENAS_TEST_KUBECONFIG"


@dataclass(frozen=True)
class Cluster:
    """What a test gets: a kubeconfig, a kubectl bound to it, the local node agent if any."""

    kubeconfig: Path
    kubectl_bin: Path
    agent: NodeAgent | None = None  # None for an existing cluster
    control_plane: ControlPlane | None = None

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster (raises KubectlError on failure if ``check``)."""
        return Kubectl(self.kubectl_bin, self.kubeconfig)(*args, check=check, input=input, timeout=timeout)


def _existing_kubectl() -> Path:
    if bins := os.environ.get(ENV_BIN):
        return Path(bins) / "kubectl"
    if found := shutil.which("kubectl"):
        return Path(found)
    return bin_dir() / "kubectl"  # build (or reuse) the one from tests/controlplane


@contextmanager
def cluster(**agent_options: Any) -> Iterator[Cluster]:
    """Yield a :class:`Cluster`; ``agent_options`` go to :class:`NodeAgent` (local only)."""
    if existing := os.environ.get(KUBECONFIG_ENV):
        yield Cluster(Path(existing), _existing_kubectl())
        return
    with ControlPlane() as cp, NodeAgent(cp.kubeconfig, **agent_options) as agent:
        yield Cluster(cp.kubeconfig, cp.kubectl_bin, agent, cp)


STAND_IN = Path(__file__).with_name("stand_in_trainer.py")


def stand_in_path(work: Path) -> str:
    """A PATH whose `kubenas-trainer` is the stand-in trainer (run with `python -S`), then the usual one."""
    bin_dir = work / "stand-in-bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "kubenas-trainer"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -S {STAND_IN} "$@"\n')
    shim.chmod(0o755)
    return os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
