"""Recurrent layers (LSTM, GRU), optionally bidirectional; they output the whole sequence."""

from __future__ import annotations

from torch import Tensor, nn

from kubenas_trainer.models.blocks import ACTIVATIONS, feature_norm, projection
from kubenas_trainer.models.shapes import ArchitectureError, ImageRows, Shape, describe
from kubenas_trainer.spec import Layer, LayerType

CELLS: dict[LayerType, type[nn.LSTM] | type[nn.GRU]] = {LayerType.LSTM: nn.LSTM, LayerType.GRU: nn.GRU}


class RecurrentBlock(nn.Module):
    """rnn -> norm -> activation (+ skip) -> dropout, on (N, L, C) sequences."""

    def __init__(self, width_in: int, layer: Layer) -> None:
        super().__init__()
        width = layer.units * (2 if layer.bidirectional else 1)
        cell = CELLS[layer.type]
        self.rnn = cell(width_in, layer.units, batch_first=True, bidirectional=bool(layer.bidirectional))
        self.norm = feature_norm(layer.normalization, width, sequence=True)
        self.act = ACTIVATIONS[layer.activation]()
        self.skip = projection(layer.residual, width_in, width)
        self.drop = nn.Dropout(layer.dropout) if layer.dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h, _ = self.rnn(x)
        h = self.act(self.norm(h))
        if self.skip is not None:
            h = h + self.skip(x)
        out: Tensor = self.drop(h)
        return out


def build_recurrent(layer: Layer, shape: Shape, where: str) -> tuple[list[nn.Module], Shape]:
    """Sequences go straight in; an image is read row by row."""
    modules: list[nn.Module] = []
    if len(shape) == 3:
        modules.append(ImageRows())
        shape = (shape[1], shape[0] * shape[2])
    if len(shape) != 2:
        raise ArchitectureError(
            f"{where} ({layer.type}): needs a sequence (length, channels) or an image as input, but gets "
            f"{describe(shape)}; recurrent layers apply to sequence or image data, before any dense layer"
        )
    width = layer.units * (2 if layer.bidirectional else 1)
    return [*modules, RecurrentBlock(shape[1], layer)], (shape[0], width)
