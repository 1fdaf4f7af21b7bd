"""Whether an experiment's search space can produce candidates its data set takes, before any Job.

For a built-in data set the sample shape is known without loading it (kubenas_trainer.shapes, torch-free):
a layer type that no candidate could use on it (conv2d on a tabular set, lstm on a flat vector) is a
spec error naming spec.searchSpace.layers.types. Files and s3:// objects are only known once a trial
loads them: there the first trial's InvalidSpec or DataUnavailable ends the experiment (decide.py).
"""

from __future__ import annotations

from kubenas_trainer.shapes import builtin_shape, feasible_layer_types

from kubenas.api.errors import SpecError
from kubenas.api.experiment import NASExperimentSpec


def check_feasible(spec: NASExperimentSpec) -> None:
    """SpecError naming the layer types the data set's samples cannot take; nothing when unknown."""
    shape = builtin_shape(spec.training)
    if shape is None:
        return
    usable = feasible_layer_types(shape)
    wanted = spec.search_space.layers.types
    impossible = [str(t) for t in wanted if t not in usable]
    if impossible:
        takes = ", ".join(sorted(str(t) for t in usable)) or "none"
        raise SpecError(
            [
                f"spec.searchSpace.layers.types: {', '.join(impossible)} cannot apply to data set "
                f"{spec.training.dataset!r}, whose samples have shape {shape}; it takes: {takes}"
            ]
        )
