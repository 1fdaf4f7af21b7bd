"""Locate the control-plane binaries (etcd, kube-*, kubectl) built by tests/controlplane."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

BUILD_SCRIPT = Path(__file__).resolve().parents[1] / "controlplane" / "build.sh"
ENV_BIN = "KUBENAS_CONTROLPLANE_BIN"
TOOLS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


@functools.cache
def bin_dir() -> Path:
    """``$KUBENAS_CONTROLPLANE_BIN`` if set, else the last stdout line of ``build.sh``.

    The build is cached outside the repository, so after the first (slow) build this is instant.
    """
    if env := os.environ.get(ENV_BIN):
        path = Path(env)
    else:
        done = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{BUILD_SCRIPT} failed ({done.returncode}):\n{done.stderr[-4000:]}")
        path = Path(done.stdout.strip().splitlines()[-1])
    missing = [t for t in TOOLS if not os.access(path / t, os.X_OK)]
    if missing:
        raise RuntimeError(f"control-plane bin dir {path} lacks {', '.join(missing)}")
    return path
