"""The model builder: every layer family builds for the shapes it accepts and rejects the rest clearly."""

from __future__ import annotations

import pytest
import torch
from kubenas_trainer.models import LAYER_BUILDERS, ArchitectureError, build_model
from kubenas_trainer.models.shapes import FLATTEN_LIMIT
from kubenas_trainer.spec import Architecture, Layer, LayerType
from pydantic import ValidationError


def layer(kind: str, units: int = 16, activation: str = "relu", **fields: object) -> Layer:
    return Layer.model_validate({"type": kind, "units": units, "activation": activation, **fields})


FEATURES, SEQUENCE, IMAGE = (13,), (20, 3), (1, 8, 8)
ACCEPTS = {
    LayerType.DENSE: [FEATURES, SEQUENCE, IMAGE],
    LayerType.CONV1D: [SEQUENCE],
    LayerType.CONV2D: [IMAGE],
    LayerType.LSTM: [SEQUENCE, IMAGE],
    LayerType.GRU: [SEQUENCE, IMAGE],
}
VARIANTS = [
    {},
    {"normalization": "batch"},
    {"normalization": "layer", "residual": True},
    {"residual": True, "dropout": 0.2},
]


def extras(kind: LayerType) -> list[dict[str, object]]:
    if kind in (LayerType.CONV1D, LayerType.CONV2D):
        return [{"pooling": "max"}, {"pooling": "avg", "kernelSize": 5}]
    if kind in (LayerType.LSTM, LayerType.GRU):
        return [{"bidirectional": True}]
    return []


def test_every_layer_type_has_a_builder_and_an_expectation() -> None:
    assert set(LAYER_BUILDERS) == set(LayerType) == set(ACCEPTS)


@pytest.mark.parametrize("kind", list(LayerType))
def test_each_family_builds_for_its_inputs_in_every_variant(kind: LayerType) -> None:
    for shape in ACCEPTS[kind]:
        for fields in VARIANTS + extras(kind):
            for units in (8, shape[0]):  # residual with and without a projection
                arch = Architecture(layers=[layer(kind, units=units, **fields), layer("dense", units=4)])
                model = build_model(arch, shape, 3)
                model.train()
                out = model(torch.randn(5, *shape))
                assert out.shape == (5, 3), (kind, shape, fields)
                out.sum().backward()
                assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_families_stack_conv_then_recurrent_then_dense() -> None:
    arch = Architecture(
        layers=[
            layer("conv2d", units=4, pooling="max"),
            layer("lstm", units=6, bidirectional=True),
            layer("dense", units=5),
        ]
    )
    assert build_model(arch, (1, 8, 8), 10)(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    seq = Architecture(layers=[layer("conv1d", units=4), layer("gru", units=6), layer("conv1d", units=3)])
    assert build_model(seq, (12, 1), 1)(torch.randn(2, 12, 1)).shape == (2, 1)


def test_large_feature_maps_are_pooled_globally_small_ones_flattened() -> None:
    small = build_model(Architecture(layers=[layer("conv2d", units=4)]), (1, 8, 8), 2)
    assert isinstance(small[-2], torch.nn.Flatten) and small[-1].in_features == 4 * 8 * 8
    big = build_model(Architecture(layers=[layer("conv2d", units=16)]), (3, 32, 32), 2)
    assert FLATTEN_LIMIT < 16 * 32 * 32 and big[-1].in_features == 16


@pytest.mark.parametrize(
    ("layers", "shape", "message"),
    [
        ([layer("conv2d")], FEATURES, "architecture.layers[0] (conv2d): needs an image"),
        ([layer("conv2d")], SEQUENCE, "architecture.layers[0] (conv2d): needs an image"),
        ([layer("conv1d")], IMAGE, "architecture.layers[0] (conv1d): needs a sequence"),
        ([layer("lstm")], FEATURES, "architecture.layers[0] (lstm): needs a sequence"),
        ([layer("dense"), layer("gru")], SEQUENCE, "architecture.layers[1] (gru): needs a sequence"),
        ([layer("dense"), layer("conv2d")], IMAGE, "architecture.layers[1] (conv2d): needs an image"),
        ([layer("conv2d", kernelSize=9)], IMAGE, "kernelSize 9 exceeds the input's extent (8, 8)"),
        (
            [layer("conv2d", pooling="max", kernelSize=1)] * 4,
            IMAGE,
            "architecture.layers[3] (conv2d): pooling halves the extent (1, 1)",
        ),
    ],
)
def test_impossible_architectures_name_the_layer_and_the_rule(
    layers: list[object], shape: tuple[int, ...], message: str
) -> None:
    with pytest.raises(ArchitectureError) as error:
        build_model(Architecture.model_validate({"layers": layers}), shape, 3)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": "dense", "kernelSize": 3}, "kernelSize and pooling apply to conv1d/conv2d layers only"),
        ({"type": "lstm", "pooling": "max"}, "kernelSize and pooling apply to conv1d/conv2d layers only"),
        ({"type": "conv2d", "bidirectional": True}, "bidirectional applies to lstm/gru layers only"),
        ({"type": "conv2d", "kernelSize": 33}, "less than or equal to 31"),
        ({"type": "attention"}, "Input should be 'dense', 'conv1d', 'conv2d', 'lstm' or 'gru'"),
    ],
)
def test_layer_fields_that_do_not_fit_the_type_are_rejected(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as error:
        Architecture.model_validate({"layers": [{"units": 4, "activation": "relu", **fields}]})
    assert message in str(error.value)


def test_layer_count_out_of_range_is_rejected() -> None:
    too_many = [{"type": "dense", "units": 4, "activation": "relu"}] * 65
    for layers, message in (([], "at least 1 item"), (too_many, "at most 64 items")):
        with pytest.raises(ValidationError) as error:
            Architecture.model_validate({"layers": layers})
        assert "layers" in str(error.value) and message in str(error.value)


def test_forward_flops_and_parameters_of_dense_conv_and_recurrent_layers() -> None:
    from kubenas_trainer.profiling import forward_flops, parameter_count

    mlp = build_model(Architecture(layers=[layer("dense", 32)]), (13,), 3)
    assert forward_flops(mlp, torch.randn(1, 13)) == 2 * (13 * 32 + 32 * 3)
    assert parameter_count(mlp) == 13 * 32 + 32 + 32 * 3 + 3
    conv = build_model(Architecture(layers=[layer("conv2d", 4, kernelSize=3)]), (1, 8, 8), 2)
    assert forward_flops(conv, torch.randn(1, 1, 8, 8)) == 2 * (8 * 8 * 4 * 9) + 2 * (4 * 8 * 8 * 2)
    lstm = build_model(Architecture(layers=[layer("lstm", 6, bidirectional=True)]), (5, 2), 1)
    recurrent = (
        2 * 4 * (2 + 6) * 6 * 5 * 2
    )  # 2 FLOPs x 4 gates x (input + hidden) x hidden x steps x directions
    assert forward_flops(lstm, torch.randn(1, 5, 2)) == recurrent + 2 * (5 * 12)
