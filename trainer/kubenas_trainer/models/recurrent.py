"""Recurrent layers (LSTM, GRU), optionally bidirectional; they output the whole sequence."""

from __future__ import annotations

from torch import Tensor, nn

from kubenas_trainer.models.blocks import ACTIVATIONS, feature_norm, projection
from kubenas_trainer.shapes import LayerShapes
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


def build_recurrent(layer: Layer, shapes: LayerShapes) -> nn.Module:
    """A sequence in (an image is read row by row before it)."""
    return RecurrentBlock(shapes.inner[1], layer)
