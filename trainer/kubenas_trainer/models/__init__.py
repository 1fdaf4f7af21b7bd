"""Build a PyTorch network from a candidate's architecture and its data set's shapes.

The shapes are kubenas_trainer.shapes' (the torch-free rules the control plane checks search spaces
with): check_architecture says what each layer takes and gives, or raises an ArchitectureError naming the
layer and the rule, so an impossible candidate fails before any training. Each layer family is then one
builder in LAYER_BUILDERS, (layer, its shapes) -> the layer's module, after the adapter (flatten, global
average, image rows) the rules call for.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from kubenas_trainer.models.conv import build_conv1d, build_conv2d
from kubenas_trainer.models.dense import build_dense
from kubenas_trainer.models.recurrent import build_recurrent
from kubenas_trainer.models.shapes import adapter_modules
from kubenas_trainer.shapes import ArchitectureError, LayerShapes, Shape, check_architecture, to_features
from kubenas_trainer.spec import Architecture, Layer, LayerType

__all__ = ["LAYER_BUILDERS", "ArchitectureError", "build_model"]

LayerBuilder = Callable[[Layer, LayerShapes], nn.Module]

LAYER_BUILDERS: dict[LayerType, LayerBuilder] = {
    LayerType.DENSE: build_dense,
    LayerType.CONV1D: build_conv1d,
    LayerType.CONV2D: build_conv2d,
    LayerType.LSTM: build_recurrent,
    LayerType.GRU: build_recurrent,
}


def build_model(architecture: Architecture, input_shape: Shape, num_outputs: int) -> nn.Sequential:
    """Hidden layers in order, each after its adapter, then features (flattened or pooled) into a linear
    output layer."""
    modules: list[nn.Module] = []
    shapes = check_architecture(architecture, input_shape)
    for layer, sizes in zip(architecture.layers, shapes, strict=True):
        modules += [*adapter_modules(sizes.adapter, sizes.input), LAYER_BUILDERS[layer.type](layer, sizes)]
    last = shapes[-1].output
    adapter, (width,) = to_features(last)
    modules += [*adapter_modules(adapter, last), nn.Linear(width, num_outputs)]
    return nn.Sequential(*modules)
