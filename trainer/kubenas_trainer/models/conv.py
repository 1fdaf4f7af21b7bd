"""Convolutions over sequences (conv1d) and images (conv2d), 'same' padding, optional pooling."""

from __future__ import annotations

from torch import Tensor, nn

from kubenas_trainer.models.blocks import ACTIVATIONS, channel_norm
from kubenas_trainer.models.shapes import ArchitectureError, Shape, describe
from kubenas_trainer.spec import Layer, Pooling

DEFAULT_KERNEL = 3


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
        self.pool = pools[layer.pooling][dims - 1](2) if layer.pooling in pools else nn.Identity()
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


def _check_extent(layer: Layer, extent: tuple[int, ...], where: str) -> None:
    kernel = layer.kernel_size or DEFAULT_KERNEL
    if kernel > min(extent):
        raise ArchitectureError(
            f"{where} ({layer.type}): kernelSize {kernel} exceeds the input's extent {extent}; "
            "the kernel must fit the input"
        )
    if layer.pooling not in (None, Pooling.NONE) and min(extent) < 2:
        raise ArchitectureError(
            f"{where} ({layer.type}): pooling halves the extent {extent}, which must be >= 2 for it"
        )


def _pooled(extent: tuple[int, ...], layer: Layer) -> tuple[int, ...]:
    return extent if layer.pooling in (None, Pooling.NONE) else tuple(e // 2 for e in extent)


def build_conv1d(layer: Layer, shape: Shape, where: str) -> tuple[list[nn.Module], Shape]:
    if len(shape) != 2:
        raise ArchitectureError(
            f"{where} (conv1d): needs a sequence (length, channels) as input, but gets {describe(shape)}; "
            "conv1d applies to sequence data sets, before any dense layer"
        )
    length, channels = shape
    _check_extent(layer, (length,), where)
    return [ConvBlock(1, channels, layer)], (_pooled((length,), layer)[0], layer.units)


def build_conv2d(layer: Layer, shape: Shape, where: str) -> tuple[list[nn.Module], Shape]:
    if len(shape) != 3:
        raise ArchitectureError(
            f"{where} (conv2d): needs an image (channels, height, width) as input, but gets "
            f"{describe(shape)}; conv2d applies to image data sets, before any dense or recurrent layer"
        )
    channels, height, width = shape
    _check_extent(layer, (height, width), where)
    return [ConvBlock(2, channels, layer)], (layer.units, *_pooled((height, width), layer))
