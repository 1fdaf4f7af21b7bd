"""Tiny real experiments on digits, one per strategy family, for the report tests.

Each manifest trains small MLPs for a few epochs so that a whole run takes seconds to a minute on a CPU,
while still exercising what the report shows for its family: ASHA's pauses and promotions, PBT's
exploits, MIHA's lineage, NSGA-II's Pareto front.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]

FAMILIES = ("random", "asha", "pbt", "miha", "nsga2")

_SPACE: dict[str, Any] = {
    "layers": {
        "count": {"min": 1, "max": 2},
        "units": {"values": [16, 32, 64]},
        "activations": ["relu", "tanh"],
        "dropout": {"min": 0.0, "max": 0.2},
    },
    "hyperparameters": {
        "learningRate": {"min": 0.001, "max": 0.03, "log": True},
        "optimizers": ["adam", "sgd"],
        "batchSize": {"values": [32, 64]},
    },
}
# PBT and MIHA continue checkpoints, so only hyperparameters (and activations) may change.
_FIXED_SHAPE_SPACE: dict[str, Any] = {
    "layers": {"count": {"values": [1]}, "units": {"values": [32]}, "activations": ["relu", "tanh"]},
    "hyperparameters": _SPACE["hyperparameters"],
}


def manifest(family: str) -> dict[str, Any]:
    """The NASExperiment document of `family`'s tiny run (experiment name = family)."""
    doc = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())
    spec = doc["spec"]
    doc["metadata"]["name"] = family
    spec["objective"] = {"metric": "accuracy"}
    spec["searchSpace"] = copy.deepcopy(_SPACE)
    spec["training"]["epochs"] = 3
    if family == "random":
        spec["strategy"] = {"name": "random", "seed": 7}
        spec["budget"] = {"maxTrials": 5, "parallelTrials": 2}
    elif family == "asha":
        spec["strategy"] = {"name": "random", "seed": 3}
        spec["budget"] = {"maxTrials": 6, "parallelTrials": 2}
        spec["training"]["epochs"] = 9
        spec["earlyStopping"] = {"rule": "asha", "minEpochs": 1, "reductionFactor": 3}
    elif family == "pbt":
        spec["searchSpace"] = copy.deepcopy(_FIXED_SHAPE_SPACE)
        spec["strategy"] = {"name": "pbt", "seed": 3, "settings": {"populationSize": 3, "interval": 2}}
        spec["budget"] = {"maxTrials": 6, "parallelTrials": 3}
        spec["training"]["epochs"] = 4
    elif family == "miha":
        spec["searchSpace"] = copy.deepcopy(_FIXED_SHAPE_SPACE)
        settings = {"runUpEpochs": 1, "cycles": 2, "populationSize": 2, "cycleEpochs": 1, "continueEpochs": 1}
        spec["strategy"] = {"name": "miha", "seed": 1, "settings": settings}
        spec["budget"] = {"maxTrials": 8, "parallelTrials": 2}
        spec["training"]["epochs"] = 6
    elif family == "nsga2":
        objectives = [{"metric": "accuracy"}, {"metric": "trainingSeconds"}]
        spec["strategy"] = {
            "name": "nsga2",
            "seed": 5,
            "settings": {"objectives": objectives, "populationSize": 4},
        }
        spec["budget"] = {"maxTrials": 6, "parallelTrials": 2}
    else:
        raise ValueError(f"unknown family {family!r}; one of {', '.join(FAMILIES)}")
    return doc
