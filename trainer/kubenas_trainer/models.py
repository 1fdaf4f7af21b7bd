"""Build a PyTorch network from a candidate's architecture."""

from __future__ import annotations

from torch import nn

from kubenas_trainer.spec import Activation, Architecture, LayerType

ACTIVATIONS: dict[Activation, type[nn.Module]] = {
    Activation.RELU: nn.ReLU,
    Activation.TANH: nn.Tanh,
    Activation.SIGMOID: nn.Sigmoid,
    Activation.GELU: nn.GELU,
    Activation.ELU: nn.ELU,
    Activation.LEAKY_RELU: nn.LeakyReLU,
    Activation.SELU: nn.SELU,
    Activation.SILU: nn.SiLU,
}


def build_model(architecture: Architecture, in_features: int, num_outputs: int) -> nn.Sequential:
    modules: list[nn.Module] = []
    width = in_features
    for position, layer in enumerate(architecture.layers):
        if layer.type is not LayerType.DENSE:
            raise ValueError(f"architecture.layers[{position}].type: {layer.type} is not supported")
        modules += [nn.Linear(width, layer.units), ACTIVATIONS[layer.activation]()]
        if layer.dropout > 0:
            modules.append(nn.Dropout(layer.dropout))
        width = layer.units
    modules.append(nn.Linear(width, num_outputs))
    return nn.Sequential(*modules)
