"""The shapes a candidate's layers take and give, as pure rules: the one source of truth of the trainer's
model builder (kubenas_trainer.models builds exactly what these rules say) and of the control plane, which
checks a search space against a built-in data set before any trial runs. Imports no torch, numpy or
scikit-learn.

Shapes exclude the batch: features (F,), a sequence (length, channels) or an image (channels, height,
width); a larger rank is a tensor that only dense layers take (flattened, or averaged over all but its
first dimension). Rules, per layer type (RULES):

- dense: anything; a sequence, image or tensor of at most FLATTEN_LIMIT values is flattened, a larger
  one averaged globally (over time, or over space) to its channels; gives (units,).
- conv1d: a sequence (L, C); gives (L, units), L halved (rounded down) by pooling.
- conv2d: an image (C, H, W); gives (units, H, W), H and W halved (rounded down) by pooling.
  A convolution's kernelSize (default 3, 'same' padding) must not exceed its input's extent, and pooling
  (window 2) needs an extent of at least 2 (PyTorch's pooling fails on an extent of 1).
- lstm, gru: a sequence (L, C), or an image read row by row as (H, C*W); gives (L, units), twice the
  units when bidirectional.
- A residual layer adds its input (projected when widths differ) before pooling: no shape changes.
- Batch normalisation needs more than one value per channel in a training batch: with batchSize 1 a
  layer must give more than one position (check_candidate).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from math import prod
from typing import Final

from kubenas_trainer.spec import (
    CONV_LAYERS,
    Architecture,
    Candidate,
    Layer,
    LayerType,
    Normalization,
    Pooling,
    Training,
    UnusableSpec,
)

__all__ = [
    "BUILTIN_SHAPES",
    "DEFAULT_KERNEL",
    "DEFAULT_SEQUENCE_LENGTHS",
    "FLATTEN_LIMIT",
    "POOL_WINDOW",
    "RULES",
    "Adapter",
    "ArchitectureError",
    "LayerShapes",
    "Shape",
    "builtin_shape",
    "check_architecture",
    "check_candidate",
    "describe",
    "feasible_layer_types",
    "layer_output",
    "layer_shapes",
    "probe_layers",
    "to_features",
]

Shape = tuple[int, ...]
FLATTEN_LIMIT: Final = 4096  # larger sequences and images are reduced by global average pooling instead
DEFAULT_KERNEL: Final = 3
POOL_WINDOW: Final = 2


class ArchitectureError(UnusableSpec):
    """A candidate that cannot be built for its data set; the message names the layer and the rule."""


class Adapter(StrEnum):
    """What goes between a layer's input and the layer itself, so that it gets the shape it takes."""

    NONE = "none"
    FLATTEN = "flatten"  # a sequence, image or tensor -> (all its values,)
    AVERAGE = "average"  # global average pooling: (L, C) -> (C,) over time, (C, ...) -> (C,) over space
    IMAGE_ROWS = "imageRows"  # (C, H, W) -> (H, C*W): an image read row by row


@dataclass(frozen=True)
class LayerShapes:
    """One layer's shapes: what it gets, the adapter before it, what the layer itself takes, what it gives."""

    input: Shape
    adapter: Adapter
    inner: Shape
    output: Shape


def describe(shape: Shape) -> str:
    kind = {1: "features", 2: "a sequence (length, channels)", 3: "an image (channels, height, width)"}
    return f"{kind.get(len(shape), 'a tensor')} of shape {shape}"


def to_features(shape: Shape) -> tuple[Adapter, Shape]:
    """Features as they are; a sequence, image or tensor flattened when small enough, else averaged
    globally: over time for a sequence (L, C), over every dimension but the first otherwise."""
    if len(shape) == 1:
        return Adapter.NONE, shape
    if prod(shape) <= FLATTEN_LIMIT:
        return Adapter.FLATTEN, (prod(shape),)
    return Adapter.AVERAGE, (shape[1],) if len(shape) == 2 else (shape[0],)


def _dense(layer: Layer, shape: Shape, where: str) -> LayerShapes:
    adapter, inner = to_features(shape)
    return LayerShapes(shape, adapter, inner, (layer.units,))


def _check_extent(layer: Layer, extent: tuple[int, ...], where: str) -> tuple[int, ...]:
    """The extent after the layer ('same' padding, then pooling), or why the layer cannot take it."""
    kernel = layer.kernel_size or DEFAULT_KERNEL
    if kernel > min(extent):
        raise ArchitectureError(
            f"{where} ({layer.type}): kernelSize {kernel} exceeds the input's extent {extent}; "
            "the kernel must fit the input"
        )
    if layer.pooling in (None, Pooling.NONE):
        return extent
    if min(extent) < POOL_WINDOW:
        raise ArchitectureError(
            f"{where} ({layer.type}): pooling halves the extent {extent}, which must be >= 2 for it"
        )
    return tuple(e // POOL_WINDOW for e in extent)


def _conv1d(layer: Layer, shape: Shape, where: str) -> LayerShapes:
    if len(shape) != 2:
        raise ArchitectureError(
            f"{where} (conv1d): needs a sequence (length, channels) as input, but gets {describe(shape)}; "
            "conv1d applies to sequence data sets, before any dense layer"
        )
    (length,) = _check_extent(layer, shape[:1], where)
    return LayerShapes(shape, Adapter.NONE, shape, (length, layer.units))


def _conv2d(layer: Layer, shape: Shape, where: str) -> LayerShapes:
    if len(shape) != 3:
        raise ArchitectureError(
            f"{where} (conv2d): needs an image (channels, height, width) as input, but gets "
            f"{describe(shape)}; conv2d applies to image data sets, before any dense or recurrent layer"
        )
    height, width = _check_extent(layer, shape[1:], where)
    return LayerShapes(shape, Adapter.NONE, shape, (layer.units, height, width))


def _recurrent(layer: Layer, shape: Shape, where: str) -> LayerShapes:
    """A sequence goes straight in; an image is read row by row."""
    adapter, inner = Adapter.NONE, shape
    if len(shape) == 3:
        adapter, inner = Adapter.IMAGE_ROWS, (shape[1], shape[0] * shape[2])
    if len(inner) != 2:
        raise ArchitectureError(
            f"{where} ({layer.type}): needs a sequence (length, channels) or an image as input, but gets "
            f"{describe(shape)}; recurrent layers apply to sequence or image data, before any dense layer"
        )
    width = layer.units * (2 if layer.bidirectional else 1)
    return LayerShapes(shape, adapter, inner, (inner[0], width))


Rule = Callable[[Layer, Shape, str], LayerShapes]
RULES: dict[LayerType, Rule] = {
    LayerType.DENSE: _dense,
    LayerType.CONV1D: _conv1d,
    LayerType.CONV2D: _conv2d,
    LayerType.LSTM: _recurrent,
    LayerType.GRU: _recurrent,
}


def _check_input(shape: Shape) -> None:
    if not shape or min(shape) < 1:
        raise ArchitectureError(f"the data's samples have shape {shape}, which holds no values for a layer")


def layer_shapes(layer: Layer, shape: Shape, where: str = "layer") -> LayerShapes:
    """The layer's shapes on an input of `shape`, or an ArchitectureError naming `where` and the rule."""
    _check_input(shape)
    return RULES[layer.type](layer, shape, where)


def layer_output(layer: Layer, shape: Shape, where: str = "layer") -> Shape:
    """What the layer gives for an input of `shape`; ArchitectureError when it cannot take it."""
    return layer_shapes(layer, shape, where).output


def check_architecture(architecture: Architecture, input_shape: Shape) -> tuple[LayerShapes, ...]:
    """Every hidden layer's shapes, in order, or an ArchitectureError naming the first layer that cannot
    take its input, as `architecture.layers[i] (type): rule`. The output layer takes any last shape."""
    shapes, shape = [], input_shape
    for position, layer in enumerate(architecture.layers):
        shapes.append(layer_shapes(layer, shape, f"architecture.layers[{position}]"))
        shape = shapes[-1].output
    return tuple(shapes)


def positions(shape: Shape) -> int:
    """How many values each channel has per sample: 1 for features, L for a sequence, H*W for an image."""
    if len(shape) == 1:
        return 1
    return shape[0] if len(shape) == 2 else prod(shape[1:])


def check_candidate(candidate: Candidate, input_shape: Shape) -> tuple[LayerShapes, ...]:
    """check_architecture, and batch normalisation against batchSize: with batches of one sample a
    batch-normalised layer needs more than one position per channel (PyTorch fails at the first step)."""
    shapes = check_architecture(candidate.architecture, input_shape)
    if candidate.hyperparameters.batch_size > 1:
        return shapes
    for position, (layer, sizes) in enumerate(zip(candidate.architecture.layers, shapes, strict=True)):
        if layer.normalization is Normalization.BATCH and positions(sizes.inner) == 1:
            raise ArchitectureError(
                f"architecture.layers[{position}] ({layer.type}): normalization batch needs more than one "
                f"value per channel in a batch, but hyperparameters.batchSize is 1 and the layer takes "
                f"{describe(sizes.inner)}"
            )
    return shapes


# --- which layer types a data set's samples allow ---------------------------------------------------


def probe_layers(types: Iterable[LayerType] = LayerType) -> tuple[Layer, ...]:
    """Each layer type at its most permissive: one unit, kernelSize 1, no pooling, one direction (the
    rules only ever reject a larger kernel or a pooling, and no rule looks at units)."""

    def probe(kind: LayerType) -> Layer:
        kernel = {"kernelSize": 1} if kind in CONV_LAYERS else {}
        return Layer.model_validate({"type": kind, "units": 1, "activation": "relu", **kernel})

    return tuple(probe(kind) for kind in types)


def feasible_layer_types(input_shape: Shape, layers: Iterable[Layer] | None = None) -> set[LayerType]:
    """The layer types that appear in some valid candidate for samples of input_shape, a candidate being
    any sequence of `layers` (default probe_layers(): every type, most permissive; a control plane passes
    the layers its search space can draw). Derived from RULES by a search over the shapes the layers can
    reach from the input: a type is feasible when some reachable shape takes one of its layers (a
    candidate may end after any layer). The shapes reachable are finitely many: extents only keep or
    halve, widths come from the layers' units."""
    probes = tuple(probe_layers() if layers is None else layers)
    feasible: set[LayerType] = set()
    seen, frontier = {input_shape}, [input_shape]
    while frontier:
        shape = frontier.pop()
        for layer in probes:
            try:
                output = layer_output(layer, shape)
            except ArchitectureError:
                continue
            feasible.add(layer.type)
            if output not in seen:
                seen.add(output)
                frontier.append(output)
    return feasible


# --- the built-in data sets' samples ----------------------------------------------------------------

DEFAULT_SEQUENCE_LENGTHS: Final = {"sunspots": 20, "co2": 52}


def _fixed(shape: Shape) -> Callable[[Training], Shape]:
    return lambda training: shape


def _window(name: str) -> Callable[[Training], Shape]:
    return lambda training: (training.sequence_length or DEFAULT_SEQUENCE_LENGTHS[name], 1)


# The per-sample input shape of every built-in data set, as the loaders give it (tests hold them to it).
BUILTIN_SHAPES: Final[Mapping[str, Callable[[Training], Shape]]] = {
    "digits": _fixed((1, 8, 8)),
    "iris": _fixed((4,)),
    "wine": _fixed((13,)),
    "breast_cancer": _fixed((30,)),
    "diabetes": _fixed((10,)),
    "sunspots": _window("sunspots"),
    "co2": _window("co2"),
    "mnist": _fixed((1, 28, 28)),
    "fashion_mnist": _fixed((1, 28, 28)),
    "cifar10": _fixed((3, 32, 32)),
}


def builtin_shape(training: Training) -> Shape | None:
    """The per-sample input shape of training.dataset when known without loading it (a built-in set);
    None for a file or an s3:// object."""
    shape_of = BUILTIN_SHAPES.get(training.dataset)
    return None if shape_of is None else shape_of(training)
