"""Per-sample tensor shapes between layers, and the adapters inserted where a layer needs another shape.

Shapes exclude the batch: features (F,), a sequence (length, channels) or an image (C, H, W).
"""

from __future__ import annotations

from math import prod

from torch import Tensor, nn

from kubenas_trainer.spec import UnusableSpec

Shape = tuple[int, ...]
FLATTEN_LIMIT = 4096  # larger sequences and images are reduced by global average pooling instead


class ArchitectureError(UnusableSpec):
    """A candidate that cannot be built for its data set; the message names the layer and the rule."""


def describe(shape: Shape) -> str:
    kind = {1: "features", 2: "a sequence (length, channels)", 3: "an image (channels, height, width)"}
    return f"{kind.get(len(shape), 'a tensor')} of shape {shape}"


class GlobalAveragePool(nn.Module):
    """Mean over time (sequences, (N, L, C)) or over space (images, (N, C, H, W))."""

    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=self.dims)


class ImageRows(nn.Module):
    """Read an image (N, C, H, W) as a sequence of its rows (N, H, C*W), for recurrent layers."""

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(0, 2, 1, 3).flatten(2)


def to_features(shape: Shape) -> tuple[nn.Module | None, Shape]:
    """Flatten a sequence or image when small enough, else average it globally; features stay as they are."""
    if len(shape) == 1:
        return None, shape
    if prod(shape) <= FLATTEN_LIMIT:
        return nn.Flatten(), (prod(shape),)
    if len(shape) == 2:
        return GlobalAveragePool((1,)), (shape[1],)
    return GlobalAveragePool((2, 3)), (shape[0],)
