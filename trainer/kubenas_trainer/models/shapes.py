"""The torch side of kubenas_trainer.shapes: the adapter modules its rules put between layers.

The shape rules and ArchitectureError live in kubenas_trainer.shapes (torch-free, shared with the control
plane); they are re-exported here for compatibility.
"""

from __future__ import annotations

from torch import Tensor, nn

from kubenas_trainer.shapes import FLATTEN_LIMIT, Adapter, ArchitectureError, Shape, describe

__all__ = [
    "FLATTEN_LIMIT",
    "ArchitectureError",
    "GlobalAveragePool",
    "ImageRows",
    "Shape",
    "adapter_modules",
    "describe",
]


class GlobalAveragePool(nn.Module):
    """Mean over time (sequences, (N, L, C)) or over space (images, (N, C, H, W), and larger ranks)."""

    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=self.dims)


class ImageRows(nn.Module):
    """Read an image (N, C, H, W) as a sequence of its rows (N, H, C*W), for recurrent layers."""

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(0, 2, 1, 3).flatten(2)


def adapter_modules(adapter: Adapter, shape: Shape) -> list[nn.Module]:
    """The module (none or one) doing `adapter` to inputs of `shape` (per sample)."""
    if adapter is Adapter.FLATTEN:
        return [nn.Flatten()]
    if adapter is Adapter.AVERAGE:
        return [GlobalAveragePool((1,) if len(shape) == 2 else tuple(range(2, len(shape) + 1)))]
    if adapter is Adapter.IMAGE_ROWS:
        return [ImageRows()]
    return []
