"""Pieces every layer family shares: activations, normalisation, residual projections."""

from __future__ import annotations

from torch import Tensor, nn

from kubenas_trainer.spec import Activation, Normalization

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


class ChannelsLast(nn.Module):
    """Apply a channels-first module (N, C, L) to a sequence held as (N, L, C)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.inner(x.transpose(1, 2))
        return out.transpose(1, 2)


def feature_norm(kind: Normalization | None, width: int, sequence: bool = False) -> nn.Module:
    """Normalisation over the last dimension of (N, F) features or (N, L, F) sequences."""
    if kind is Normalization.BATCH:
        return ChannelsLast(nn.BatchNorm1d(width)) if sequence else nn.BatchNorm1d(width)
    if kind is Normalization.LAYER:
        return nn.LayerNorm(width)
    return nn.Identity()


def channel_norm(kind: Normalization | None, channels: int, dims: int) -> nn.Module:
    """Normalisation of channels-first conv outputs; layer norm is GroupNorm with one group."""
    if kind is Normalization.BATCH:
        return nn.BatchNorm1d(channels) if dims == 1 else nn.BatchNorm2d(channels)
    if kind is Normalization.LAYER:
        return nn.GroupNorm(1, channels)
    return nn.Identity()


def projection(residual: bool | None, width_in: int, width_out: int) -> nn.Module | None:
    """The skip path of a residual layer: identity, or a linear map when widths differ."""
    if not residual:
        return None
    return nn.Identity() if width_in == width_out else nn.Linear(width_in, width_out, bias=False)
