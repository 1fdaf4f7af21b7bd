"""Temp work dirs of the harness, reclaimed even when their owner process was killed."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

KEEP_ENV = "KUBENAS_KEEP_CLUSTER_DIR"  # set: keep work dirs (logs) for debugging
OWNER = "owner.pid"


def make_workdir(prefix: str) -> Path:
    """A fresh temp dir; first removes dirs with this prefix whose owner process is gone
    (etcd's preallocated WAL alone is ~120 MB)."""
    if not os.environ.get(KEEP_ENV):
        for owner in Path(tempfile.gettempdir()).glob(f"{prefix}*/{OWNER}"):
            try:
                os.kill(int(owner.read_text()), 0)
            except ProcessLookupError:
                shutil.rmtree(owner.parent, ignore_errors=True)
            except (OSError, ValueError):
                pass
    path = Path(tempfile.mkdtemp(prefix=prefix))
    (path / OWNER).write_text(str(os.getpid()))
    return path


def remove_workdir(path: Path) -> None:
    """Delete ``path`` unless ``$KUBENAS_KEEP_CLUSTER_DIR`` is set."""
    if not os.environ.get(KEEP_ENV):
        shutil.rmtree(path, ignore_errors=True)
