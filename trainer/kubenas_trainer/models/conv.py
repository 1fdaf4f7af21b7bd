"""Convolutions over sequences (conv1d) and images (conv2d), 'same' padding, optional pooling."""

from __future__ import annotations

from torch import Tensor, nn

from kubenas_trainer.models.blocks import ACTIVATIONS, channel_norm
from kubenas_trainer.shapes import DEFAULT_KERNEL, POOL_WINDOW, LayerShapes
from kubenas_trainer.spec import Layer, Pooling


class ConvBlock(nn.Module):
    """conv -> norm -> activation (+ skip) -> pool -> dropout. conv1d reads and writes (N, L, C)."""

    def __init__(self, dims: int, channels_in: int, layer: Layer) -> None:
        super().__init__()
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        kernel = layer.kernel_size or DEFAULT_KERNEL
        self.sequence = dims == 1
        self.conv = conv(channels_in, layer.units, kernel, padding="same")
        self.norm = channel_norm(layer.normalization, layer.units, dims)
        self.act = ACTIVATIONS[layer.activation]()
        self.skip: nn.Module | None = None
        if layer.residual:
            same = channels_in == layer.units
            self.skip = nn.Identity() if same else conv(channels_in, layer.units, 1, bias=False)
        pools = {Pooling.MAX: (nn.MaxPool1d, nn.MaxPool2d), Pooling.AVG: (nn.AvgPool1d, nn.AvgPool2d)}
        self.pool = pools[layer.pooling][dims - 1](POOL_WINDOW) if layer.pooling in pools else nn.Identity()
        self.drop = nn.Dropout(layer.dropout) if layer.dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        if self.sequence:
            x = x.transpose(1, 2)
        h: Tensor = self.act(self.norm(self.conv(x)))
        if self.skip is not None:
            h = h + self.skip(x)
        h = self.pool(h)
        h = self.drop(h)
        return h.transpose(1, 2) if self.sequence else h


def build_conv1d(layer: Layer, shapes: LayerShapes) -> nn.Module:
    """A sequence (L, C) in."""
    return ConvBlock(1, shapes.inner[1], layer)


def build_conv2d(layer: Layer, shapes: LayerShapes) -> nn.Module:
    """An image (C, H, W) in."""
    return ConvBlock(2, shapes.inner[0], layer)
