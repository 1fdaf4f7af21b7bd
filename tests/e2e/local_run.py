"""Running `kubenas run` on a manifest as a user would, for the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


def run_manifest(doc: dict[str, Any], tmp_path: Path, timeout: float = 600) -> str:
    """Write `doc` to tmp_path/exp.yaml, run it into tmp_path/runs, and return the output (it must
    succeed)."""
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(doc))
    proc = subprocess.run(
        [sys.executable, "-m", "kubenas.cli", "run", str(path), "--output", str(tmp_path / "runs")],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout
    return proc.stdout
