"""Running `kubenas run` on a manifest as a user would, for the end-to-end tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


def run_manifest(doc: dict[str, Any], tmp_path: Path, *args: str, timeout: float = 600) -> str:
    """Write `doc` to tmp_path/exp.yaml, run it into tmp_path/runs with `args` (e.g. --verbose), and
    return the output (it must succeed)."""
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(doc))
    proc = subprocess.run(
        [sys.executable, "-m", "kubenas.cli", "run", str(path), "--output", str(tmp_path / "runs"), *args],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout
    return proc.stdout


def assert_one_split(run_dir: Path) -> None:
    """Every trial of the run was trained and validated on the experiment's one split: the one
    training.splitSeed draws from the manifest's data set, so no trial, whoever's checkpoint it started
    from, validated on a sample that any trial trained on."""
    from kubenas.api.manifest import load_manifest
    from kubenas_trainer.data import load_split

    expected = load_split(load_manifest(run_dir / "experiment.yaml").spec.training).fingerprint
    statuses = {p.parent.name: json.loads(p.read_text()) for p in run_dir.glob("trials/*/status.json")}
    assert statuses and {s.get("splitFingerprint") for s in statuses.values()} == {expected}, statuses
