"""Every searchable field reaches the strategies, and one candidate has one canonical form and key."""

import numpy as np
import pytest
from kubenas.api import NASExperimentSpec, SearchSpace
from kubenas.space import sample_candidate
from kubenas.space.encoding import CandidateCodec
from kubenas.strategies import STRATEGIES, make_strategy
from kubenas_trainer.spec import CONV_LAYERS, RECURRENT_LAYERS, Candidate, Hyperparameters, Layer

RICH = {
    "layers": {
        "count": {"min": 1, "max": 3},
        "types": ["dense", "conv1d", "lstm"],
        "units": {"values": [8, 16]},
        "activations": ["relu", "tanh"],
        "kernelSizes": {"values": [3, 5]},
        "pooling": ["none", "max"],
        "bidirectional": [False, True],
        "normalization": ["none", "batch", "layer"],
        "residual": [False, True],
    },
    "hyperparameters": {
        "optimizers": ["adam", "sgd"],
        "weightDecay": {"values": [0.0, 0.0001]},
        "schedules": ["constant", "cosine"],
        "warmupEpochs": {"values": [0, 1]},
        "gradientClip": {"values": [0.0, 1.0]},
        "gradientClipModes": ["norm", "value"],
        "labelSmoothing": {"values": [0.0, 0.1]},
    },
}


def test_off_values_are_the_same_candidate_as_unset_ones() -> None:
    explicit = Layer.model_validate(
        {
            "type": "lstm",
            "units": 8,
            "activation": "relu",
            "bidirectional": False,
            "residual": False,
            "normalization": "none",
        }
    )
    assert explicit == Layer.model_validate({"type": "lstm", "units": 8, "activation": "relu"})
    hp = Hyperparameters.model_validate(
        {
            "learningRate": 0.1,
            "optimizer": "sgd",
            "batchSize": 8,
            "weightDecay": 0.0,
            "schedule": "constant",
            "warmupEpochs": 0,
            "gradientClipMode": "value",
        }
    )
    assert hp == Hyperparameters(learning_rate=0.1, optimizer="sgd", batch_size=8)  # no clip: no clip mode
    clipped = Hyperparameters.model_validate(
        {
            "learningRate": 0.1,
            "optimizer": "sgd",
            "batchSize": 8,
            "gradientClip": 1.0,
            "gradientClipMode": "value",
        }
    )
    assert clipped.gradient_clip_mode == "value"


def test_codec_round_trips_every_field() -> None:
    space = SearchSpace.model_validate(RICH)
    codec = CandidateCodec(space)
    for seed in range(200):
        candidate = sample_candidate(space, np.random.default_rng(seed))
        assert codec.decode(codec.encode(candidate)) == candidate


# PBT proposes one generation at a time: here a single generation (interval = training.epochs 10) of 30.
SETTINGS: dict[str, dict[str, object]] = {"pbt": {"populationSize": 30, "interval": 10}}


def first_candidates(spec: NASExperimentSpec, n: int) -> list[Candidate]:
    """What a strategy proposes before any result: n at once; or, from a strategy that continues one
    lineage (miha, whose later trials wait for its first to pause), the first trial of n seeds."""
    if not STRATEGIES[spec.strategy.name].continues_trials:
        return make_strategy(spec).ask([], n)
    seeds = [spec.strategy.model_copy(update={"seed": seed}) for seed in range(n)]
    return [make_strategy(spec.model_copy(update={"strategy": s})).ask([], 1)[0] for s in seeds]


@pytest.mark.parametrize("name", sorted(set(STRATEGIES) - {"grid"}))
def test_strategies_search_the_new_fields_and_respect_layer_types(name: str) -> None:
    strategy_spec = {"name": name, "seed": 2, "settings": SETTINGS.get(name, {})}
    spec = NASExperimentSpec.model_validate(
        {"searchSpace": RICH, "strategy": strategy_spec, "budget": {"maxTrials": 40}}
    )
    seen: dict[str, set[object]] = {"kernelSize": set(), "normalization": set(), "schedule": set()}
    for candidate in first_candidates(spec, 30):
        for layer in candidate.architecture.layers:
            assert (layer.kernel_size is not None) == (layer.type in CONV_LAYERS)
            assert layer.bidirectional is None or layer.type in RECURRENT_LAYERS
            if layer.kernel_size is not None:
                seen["kernelSize"].add(layer.kernel_size)
            seen["normalization"].add(layer.normalization)
        seen["schedule"].add(candidate.hyperparameters.schedule)
    assert seen["kernelSize"] == {3, 5}
    assert seen["normalization"] == {None, "batch", "layer"}
    assert seen["schedule"] == {None, "cosine"}
