"""Checkpoints: everything needed to continue a trial exactly where it stopped (nanoGPT-style dict).

A checkpoint records its candidate and the fingerprint of the split its weights were trained on;
continuing it on another split would validate on samples the weights were trained on, so it is refused.
One is read from a path or an s3:// URI (another trial's, in object storage).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from kubenas_trainer.spec import CHECKPOINT_FILE, ArtifactStore, UnusableSpec
from kubenas_trainer.storage import local_copy

__all__ = ["CHECKPOINT_FILE", "load_checkpoint", "save_checkpoint"]
CHECKPOINT_VERSION = 1
SPLIT_KEY = "splitFingerprint"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a reader never sees half a checkpoint, even if the process is killed."""
    partial = path.with_name(path.name + ".part")
    torch.save({"version": CHECKPOINT_VERSION, **state}, partial)
    os.replace(partial, path)


def load_checkpoint(
    location: str | Path,
    candidate_key: str | None,
    split: str,
    field: str = "resumeFrom",
    store: ArtifactStore | None = None,
    scratch: Path | None = None,
) -> dict[str, Any]:
    """A checkpoint of the given candidate (any candidate when None: a start from another trial's
    weights) trained on the given split; anything else is an error, not a silent restart. An s3://
    location is downloaded (with store's endpoint and region) to a temporary file in scratch."""
    with local_copy(str(location), store, scratch or Path(tempfile.gettempdir()), field) as local:
        return _read(local, str(location), candidate_key, split, field)


def _read(local: Path, path: str, candidate_key: str | None, split: str, field: str) -> dict[str, Any]:
    if not local.is_file():
        raise FileNotFoundError(f"{field}: no checkpoint at {path}")
    state: dict[str, Any] = torch.load(local, map_location="cpu", weights_only=True)
    if state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{field}: {path} has checkpoint version {state.get('version')}")
    if candidate_key is not None and state.get("candidate") != candidate_key:
        raise ValueError(f"{field}: {path} holds candidate {state.get('candidate')}, not {candidate_key}")
    trained_on = state.get(SPLIT_KEY) or "unknown (a checkpoint from before splits were recorded)"
    if trained_on != split:
        raise UnusableSpec(
            f"{field}: {path} was trained on split {trained_on}, this trial's split is {split} "
            "(training.splitSeed, dataset, fractions or normalization differ)"
        )
    return state
