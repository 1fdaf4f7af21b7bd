"""The search space's layer and training choices beyond the first release, and their compatibility."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from kubenas.api import SearchSpace
from kubenas.api.errors import SpecError, parse_model
from kubenas.space import sample_candidate
from kubenas_trainer.spec import CONV_LAYERS, RECURRENT_LAYERS, LayerType

ROOT = Path(__file__).resolve().parents[2]

# Keys the first release's sampler drew for seeds 0, 1, 2: a manifest that leaves the new choices
# out must keep proposing exactly these candidates (a restarted experiment continues, never repeats).
FIRST_RELEASE_KEYS = {
    "default": ["9cec5df5ab981d9b", "01ff741c16c99376", "f341287b93221b71"],
    "digits": ["56bf1afeedbf61c2", "13bad3d1c833216e", "5f17ab5e268638cb"],
}

RICH = {
    "layers": {
        "count": {"min": 1, "max": 3},
        "types": ["dense", "conv2d", "conv1d", "lstm", "gru"],
        "units": {"values": [8, 16]},
        "kernelSizes": {"values": [3, 5]},
        "pooling": ["none", "max", "avg"],
        "bidirectional": [True, False],
        "normalization": ["none", "batch", "layer"],
        "residual": [True, False],
    },
    "hyperparameters": {
        "optimizers": ["sgd", "rmsprop", "adamw"],
        "weightDecay": {"min": 0.0, "max": 0.01},
        "momentum": {"values": [0.5, 0.9]},
        "schedules": ["constant", "cosine", "step"],
        "warmupEpochs": {"values": [0, 2]},
        "gradientClip": {"values": [0.0, 1.0]},
        "gradientClipModes": ["norm", "value"],
        "labelSmoothing": {"values": [0.0, 0.1]},
        "epochs": {"min": 5, "max": 20},
    },
}


def test_manifests_without_the_new_choices_propose_the_same_candidates() -> None:
    digits = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())["spec"]["searchSpace"]
    for name, space in (("default", SearchSpace()), ("digits", SearchSpace.model_validate(digits))):
        keys = [sample_candidate(space, np.random.default_rng(seed)).key() for seed in range(3)]
        assert keys == FIRST_RELEASE_KEYS[name]
        candidate = sample_candidate(space, np.random.default_rng(0)).to_dict()
        assert set(candidate["hyperparameters"]) == {"learningRate", "optimizer", "batchSize"}
        assert all(
            set(layer) == {"type", "units", "activation", "dropout"}
            for layer in candidate["architecture"]["layers"]
        )


def test_every_new_choice_is_drawn_and_fields_fit_the_layer_type() -> None:
    space = SearchSpace.model_validate(RICH)
    seen: dict[str, set[object]] = {}
    for seed in range(200):
        candidate = sample_candidate(space, np.random.default_rng(seed))
        for layer in candidate.architecture.layers:
            assert (layer.kernel_size is not None) == (layer.type in CONV_LAYERS)
            assert layer.bidirectional is None or layer.type in RECURRENT_LAYERS
            assert layer.pooling is None or layer.type in CONV_LAYERS
            for name in ("type", "kernel_size", "pooling", "bidirectional", "normalization", "residual"):
                seen.setdefault(name, set()).add(getattr(layer, name))
        hp = candidate.hyperparameters
        assert hp.gradient_clip_mode is None or hp.gradient_clip == 1.0
        assert hp.epochs is not None and 5 <= hp.epochs <= 20
        assert hp.weight_decay is None or 0 < hp.weight_decay <= 0.01
        for name in ("schedule", "warmup_epochs", "gradient_clip", "gradient_clip_mode", "label_smoothing"):
            seen.setdefault(name, set()).add(getattr(hp, name))
    assert seen["type"] == set(LayerType)
    assert seen["kernel_size"] == {None, 3, 5} and seen["pooling"] == {None, "max", "avg"}
    assert seen["bidirectional"] == {None, True} and seen["residual"] == {None, True}
    assert seen["normalization"] == {None, "batch", "layer"}
    assert seen["schedule"] == {None, "cosine", "step"} and seen["warmup_epochs"] == {None, 2}
    assert seen["gradient_clip"] == {None, 1.0} and seen["gradient_clip_mode"] == {None, "value"}
    assert seen["label_smoothing"] == {None, 0.1}


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (
            {"layers": {"kernelSizes": {"values": [3, 33]}}},
            "spec.searchSpace.layers: kernelSizes: must lie in [1, 31] (got 3..33)",
        ),
        (
            {"layers": {"pooling": ["max", "big"]}},
            "spec.searchSpace.layers.pooling[1]: Input should be 'none', 'max' or 'avg'",
        ),
        (
            {"hyperparameters": {"weightDecay": {"min": 0, "max": 2}}},
            "weightDecay: must lie in [0, 1] (got 0..2)",
        ),
        ({"hyperparameters": {"momentum": {"values": [1.0]}}}, "momentum: must lie in [0, 1) (got 1..1)"),
        ({"hyperparameters": {"labelSmoothing": {"values": [-0.1]}}}, "labelSmoothing: must lie in [0, 1)"),
        (
            {"hyperparameters": {"schedules": ["linear"]}},
            "schedules[0]: Input should be 'constant', 'cosine' or 'step'",
        ),
        ({"hyperparameters": {"epochs": {"min": 0, "max": 3}}}, "epochs: must lie in [1, 10000] (got 0..3)"),
    ],
)
def test_bad_choices_name_the_field_and_the_rule(patch: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError) as error:
        parse_model(SearchSpace, patch, prefix="spec.searchSpace")
    assert message in str(error.value)
