"""Events the engine sends about an experiment's trials (Kubernetes Events; lines in the terminal)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kubenas_trainer.spec import Candidate


@dataclass(frozen=True)
class Event:
    """One thing that happened, once: `reason` is a CamelCase word (TrialCreated, TrialPaused ...);
    `message` may span lines (a strategy's note)."""

    type: Literal["Normal", "Warning"]
    reason: str
    trial: str
    message: str


def describe(candidate: Candidate) -> str:
    """A candidate in one readable line: its layers, then how it trains."""
    layers = " > ".join(
        f"{layer.type}({layer.units},{layer.activation}{f',drop={layer.dropout:g}' if layer.dropout else ''})"
        for layer in candidate.architecture.layers
    )
    hp = candidate.hyperparameters
    return f"{layers} | {hp.optimizer} lr={hp.learning_rate:.3g} batch={hp.batch_size}"
