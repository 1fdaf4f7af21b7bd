"""Checkpoints: everything needed to continue a trial exactly where it stopped (nanoGPT-style dict).

A checkpoint records its candidate and the fingerprint of the split its weights were trained on;
continuing it on another split would validate on samples the weights were trained on, so it is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from kubenas_trainer.spec import CHECKPOINT_FILE, UnusableSpec

__all__ = ["CHECKPOINT_FILE", "load_checkpoint", "save_checkpoint"]
CHECKPOINT_VERSION = 1
SPLIT_KEY = "splitFingerprint"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a reader never sees half a checkpoint, even if the process is killed."""
    partial = path.with_name(path.name + ".part")
    torch.save({"version": CHECKPOINT_VERSION, **state}, partial)
    os.replace(partial, path)


def load_checkpoint(
    path: Path, candidate_key: str | None, split: str, field: str = "resumeFrom"
) -> dict[str, Any]:
    """A checkpoint of the given candidate (any candidate when None: a start from another trial's
    weights) trained on the given split; anything else is an error, not a silent restart."""
    if not path.is_file():
        raise FileNotFoundError(f"{field}: no checkpoint at {path}")
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
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
