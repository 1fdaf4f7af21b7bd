"""Read an experiment manifest (YAML) into the validated model."""

from __future__ import annotations

from pathlib import Path

import yaml

from kubenas.api.errors import SpecError, parse_model
from kubenas.api.experiment import NASExperiment


def load_manifest(path: str | Path) -> NASExperiment:
    """The one NASExperiment in the file; SpecError naming the field and the rule otherwise."""
    try:
        documents = [d for d in yaml.safe_load_all(Path(path).read_text()) if d is not None]
    except yaml.YAMLError as error:
        raise SpecError([f"{path}: not valid YAML: {error}"]) from None
    except OSError as error:
        raise SpecError([f"{path}: {error.strerror}"]) from None
    experiments = [d for d in documents if isinstance(d, dict) and d.get("kind") == "NASExperiment"]
    if len(experiments) != 1:
        raise SpecError(
            [f"{path}: expected exactly one document of kind NASExperiment, found {len(experiments)}"]
        )
    return parse_model(NASExperiment, experiments[0])
