"""The pure shape rules (kubenas_trainer.shapes) against the torch builders, and what they derive: the
layer types a data set's samples allow, and the built-in sets' sample shapes."""

from __future__ import annotations

import random
import subprocess
import sys
from typing import Any

import pytest
import torch
from kubenas_trainer.models import ArchitectureError, build_model
from kubenas_trainer.models.conv import ConvBlock
from kubenas_trainer.models.dense import DenseBlock
from kubenas_trainer.models.recurrent import RecurrentBlock
from kubenas_trainer.models.shapes import ArchitectureError as ReexportedError
from kubenas_trainer.shapes import (
    BUILTIN_SHAPES,
    FLATTEN_LIMIT,
    Shape,
    builtin_shape,
    check_architecture,
    check_candidate,
    feasible_layer_types,
    layer_output,
    probe_layers,
)
from kubenas_trainer.spec import (
    BUILTIN_DATASETS,
    DOWNLOADABLE_DATASETS,
    Architecture,
    Candidate,
    Hyperparameters,
    Layer,
    LayerType,
    Training,
)
from kubenas_trainer.train import batch_count

ALL = set(LayerType)
FAMILIES: dict[str, list[Shape]] = {
    "features": [(1,), (4,), (13,)],
    "sequence": [(1, 1), (2, 3), (5, 1), (20, 3)],
    "image": [(1, 1, 1), (1, 8, 8), (3, 5, 7), (2, 2, 9)],
    "tensor": [(2, 3, 4, 5), (4, 8, 16, 10)],  # rank 4: dense only; the second past FLATTEN_LIMIT
}
FEASIBLE = {
    "features": {LayerType.DENSE},
    "sequence": {LayerType.DENSE, LayerType.CONV1D, LayerType.LSTM, LayerType.GRU},
    "image": ALL,
    "tensor": {LayerType.DENSE},
}
BLOCKS = (DenseBlock, ConvBlock, RecurrentBlock)


def layer(kind: str, units: int = 4, **fields: object) -> Layer:
    return Layer.model_validate({"type": kind, "units": units, "activation": "relu", **fields})


def random_layer(rng: random.Random, likely: set[LayerType]) -> Layer:
    """Mostly of a `likely` type (else most candidates fail at their first layer), sometimes any."""
    kind = rng.choice(sorted(likely if rng.random() < 0.8 else ALL))
    fields: dict[str, Any] = {
        "type": kind,
        "units": rng.choice([1, 3, 8, 300]),  # 300 channels take feature maps past FLATTEN_LIMIT
        "activation": rng.choice(["relu", "tanh", "gelu"]),
        "dropout": rng.choice([0.0, 0.3]),
        "normalization": rng.choice([None, "batch", "layer"]),
        "residual": rng.choice([None, True]),
    }
    if kind in (LayerType.CONV1D, LayerType.CONV2D):
        fields |= {
            "kernelSize": rng.choice([None, 1, 2, 3, 5, 9]),
            "pooling": rng.choice([None, "max", "avg"]),
        }
    if kind in (LayerType.LSTM, LayerType.GRU):
        fields["bidirectional"] = rng.choice([None, True])
    return Layer.model_validate(fields)


def test_the_rules_need_no_torch_numpy_or_scikit_learn() -> None:
    code = (
        "import sys; import kubenas_trainer.shapes, kubenas_trainer.preflight; "
        "print(sorted(m for m in ('torch', 'numpy', 'sklearn', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
    assert ReexportedError is ArchitectureError


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_rules_and_the_builders_agree_on_random_candidates(family: str) -> None:
    """check_architecture raises iff build_model does (with the same message), and every layer of a
    model it accepts gives, in a real forward pass, the shape the rules say."""
    rng, torch_rng = random.Random(f"shapes-{family}"), torch.Generator().manual_seed(0)
    valid = 0
    for _ in range(100):
        shape = rng.choice(FAMILIES[family])
        layers = [random_layer(rng, FEASIBLE[family]) for _ in range(rng.randint(1, 3))]
        architecture = Architecture(layers=layers)
        try:
            shapes = check_architecture(architecture, shape)
        except ArchitectureError as error:
            with pytest.raises(ArchitectureError) as built:
                build_model(architecture, shape, 3)
            assert str(built.value) == str(error)
            assert str(error).startswith("architecture.layers[")
            continue
        valid += 1
        assert {layer.type for layer in architecture.layers} <= feasible_layer_types(shape)
        model = build_model(architecture, shape, 3).train()
        outputs: list[Shape] = []

        def record(
            module: torch.nn.Module, args: object, out: torch.Tensor, into: list[Shape] = outputs
        ) -> None:
            into.append(tuple(out.shape[1:]))

        for module in model.modules():
            if isinstance(module, BLOCKS):
                module.register_forward_hook(record)
        with torch.no_grad():
            out = model(torch.randn(2, *shape, generator=torch_rng))
        assert out.shape == (2, 3)
        assert outputs == [s.output for s in shapes], architecture
        assert [layer_output(lay, s.input) for lay, s in zip(layers, shapes, strict=True)] == outputs
    assert 20 <= valid <= 90  # the draw exercises both sides


@pytest.mark.parametrize("family", list(FAMILIES))
def test_feasible_layer_types_per_shape_family(family: str) -> None:
    for shape in FAMILIES[family]:
        assert feasible_layer_types(shape) == FEASIBLE[family], shape


def test_feasible_layer_types_follow_the_layers_a_space_can_draw() -> None:
    digits = (1, 8, 8)
    assert feasible_layer_types(digits, [layer("conv2d", kernelSize=9)]) == set()
    assert feasible_layer_types(digits, [layer("conv2d", kernelSize=9), layer("dense")]) == {LayerType.DENSE}
    # conv2d with pooling halves 8 -> 4 -> 2 -> 1; a kernel of 3 then no longer fits, 1 still does
    assert feasible_layer_types((1, 2, 2), [layer("conv2d", pooling="max")]) == set()
    assert feasible_layer_types((1, 2, 2), [layer("conv2d", pooling="max", kernelSize=1)]) == {
        LayerType.CONV2D
    }
    # an lstm reached only through a conv2d: the search goes through intermediate shapes
    assert feasible_layer_types((20,), [layer("lstm"), layer("conv1d")]) == set()
    assert feasible_layer_types((1, 6, 6), [layer("lstm"), layer("conv1d")]) == {
        LayerType.LSTM,
        LayerType.CONV1D,
    }
    assert {p.type for p in probe_layers()} == ALL


def test_flatten_or_average_and_rank_four_inputs() -> None:
    wide = check_architecture(Architecture(layers=[layer("conv2d", 128), layer("dense")]), (1, 8, 8))
    assert FLATTEN_LIMIT < 128 * 8 * 8 and wide[1].adapter == "average" and wide[1].inner == (128,)
    narrow = check_architecture(Architecture(layers=[layer("conv1d", 3), layer("dense")]), (20, 1))
    assert narrow[1].adapter == "flatten" and narrow[1].inner == (60,)
    big = (4, 8, 16, 10)  # past the limit, averaged over all but its first dimension
    model = build_model(Architecture(layers=[layer("dense", 5)]), big, 2)
    assert model(torch.randn(3, *big)).shape == (3, 2)


@pytest.mark.parametrize(
    ("layers", "shape", "message"),
    [
        ([layer("conv1d", pooling="max", kernelSize=1)], (1, 4), "pooling halves the extent (1,)"),
        ([layer("conv2d", pooling="avg", kernelSize=1)], (1, 1, 5), "pooling halves the extent (1, 5)"),
        ([layer("conv1d", kernelSize=5)], (3, 2), "kernelSize 5 exceeds the input's extent (3,)"),
        ([layer("gru")], (2, 3, 4, 5), "needs a sequence (length, channels) or an image"),
        ([layer("dense")], (), "samples have shape (), which holds no values"),
        ([layer("dense")], (0,), "samples have shape (0,), which holds no values"),
    ],
)
def test_rules_where_pytorch_would_fail_at_run_time_raise_instead(
    layers: list[Layer], shape: Shape, message: str
) -> None:
    with pytest.raises(ArchitectureError) as error:
        check_architecture(Architecture(layers=layers), shape)
    assert message in str(error.value)


def test_pooling_an_extent_of_one_fails_in_pytorch() -> None:
    """Why the pooling rule exists: PyTorch's pooling cannot make an extent of 0."""
    with pytest.raises(RuntimeError):
        torch.nn.MaxPool1d(2)(torch.randn(2, 1, 1))


def candidate(layers: list[Layer], batch_size: int) -> Candidate:
    hp = Hyperparameters(learning_rate=0.01, optimizer="adam", batch_size=batch_size)  # type: ignore[arg-type]
    return Candidate(architecture=Architecture(layers=layers), hyperparameters=hp)


def test_batch_normalisation_of_one_value_per_channel_needs_batches_of_more_than_one() -> None:
    bn_dense = [layer("dense", normalization="batch")]
    with pytest.raises(ArchitectureError, match=r"layers\[0\] \(dense\): normalization batch needs more"):
        check_candidate(candidate(bn_dense, 1), (4,))
    check_candidate(candidate(bn_dense, 2), (4,))
    check_candidate(candidate([layer("conv2d", normalization="batch")], 1), (1, 8, 8))  # 64 per channel
    bn_lstm = [layer("lstm", normalization="batch")]
    for one_step in ((1, 3), (2, 1, 5)):  # a sequence of one step, an image of one row
        with pytest.raises(ArchitectureError, match=r"layers\[0\] \(lstm\): normalization batch"):
            check_candidate(candidate(bn_lstm, 1), one_step)
    check_candidate(candidate(bn_lstm, 1), (2, 3))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):  # why
        build_model(Architecture(layers=bn_dense), (4,), 2).train()(torch.randn(1, 4))


@pytest.mark.parametrize(
    ("samples", "batch", "steps"),
    [(64, 64, 1), (65, 64, 1), (129, 64, 2), (130, 64, 3), (1, 64, 1), (7, 1, 7)],
)
def test_a_last_batch_of_one_sample_joins_the_one_before(samples: int, batch: int, steps: int) -> None:
    assert batch_count(samples, batch) == steps


def test_builtin_shapes_cover_every_builtin_set_and_follow_the_sequence_length() -> None:
    assert set(BUILTIN_SHAPES) == set(BUILTIN_DATASETS + DOWNLOADABLE_DATASETS)
    assert builtin_shape(Training(dataset="sunspots")) == (20, 1)
    assert builtin_shape(Training(dataset="co2", sequenceLength=9)) == (9, 1)
    assert builtin_shape(Training(dataset="cifar10")) == (3, 32, 32)
    assert builtin_shape(Training(dataset="data/x.npz")) is None
