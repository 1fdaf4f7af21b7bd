"""Build a PyTorch network from a candidate's architecture and its data set's shapes.

Each layer family is one builder in LAYER_BUILDERS: (layer, input shape, where) -> (modules, output
shape). A builder rejects an input shape it cannot take with an ArchitectureError naming the layer
and the rule, so an impossible candidate fails before any training.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from kubenas_trainer.models.conv import build_conv1d, build_conv2d
from kubenas_trainer.models.dense import build_dense
from kubenas_trainer.models.recurrent import build_recurrent
from kubenas_trainer.models.shapes import ArchitectureError, Shape, to_features
from kubenas_trainer.spec import Architecture, Layer, LayerType

__all__ = ["LAYER_BUILDERS", "ArchitectureError", "build_model"]

LayerBuilder = Callable[[Layer, Shape, str], tuple[list[nn.Module], Shape]]

LAYER_BUILDERS: dict[LayerType, LayerBuilder] = {
    LayerType.DENSE: build_dense,
    LayerType.CONV1D: build_conv1d,
    LayerType.CONV2D: build_conv2d,
    LayerType.LSTM: build_recurrent,
    LayerType.GRU: build_recurrent,
}


def build_model(architecture: Architecture, input_shape: Shape, num_outputs: int) -> nn.Sequential:
    """Hidden layers in order, then features (flattened or pooled) into a linear output layer."""
    modules: list[nn.Module] = []
    shape = input_shape
    for position, layer in enumerate(architecture.layers):
        built, shape = LAYER_BUILDERS[layer.type](layer, shape, f"architecture.layers[{position}]")
        modules += built
    adapter, (width,) = to_features(shape)
    modules += [*([adapter] if adapter else []), nn.Linear(width, num_outputs)]
    return nn.Sequential(*modules)
