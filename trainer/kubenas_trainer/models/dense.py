"""Dense (fully connected) layers."""

from __future__ import annotations

from torch import Tensor, nn

from kubenas_trainer.models.blocks import ACTIVATIONS, feature_norm, projection
from kubenas_trainer.shapes import LayerShapes
from kubenas_trainer.spec import Layer


class DenseBlock(nn.Module):
    def __init__(self, width_in: int, layer: Layer) -> None:
        super().__init__()
        self.linear = nn.Linear(width_in, layer.units)
        self.norm = feature_norm(layer.normalization, layer.units)
        self.act = ACTIVATIONS[layer.activation]()
        self.skip = projection(layer.residual, width_in, layer.units)
        self.drop = nn.Dropout(layer.dropout) if layer.dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.norm(self.linear(x)))
        if self.skip is not None:
            h = h + self.skip(x)
        out: Tensor = self.drop(h)
        return out


def build_dense(layer: Layer, shapes: LayerShapes) -> nn.Module:
    """Features in (sequences and images are flattened or pooled to features before it)."""
    return DenseBlock(shapes.inner[0], layer)
