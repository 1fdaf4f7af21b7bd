"""Conditions on a categorical's value: a layer's type-specific fields exist only on the types that take
them, so no strategy searches, enumerates or mutates a field its layer does not have."""

import itertools
from collections.abc import Sequence

import numpy as np
import pytest
from kubenas.api import SearchSpace
from kubenas.space.encoding import COUNT, CandidateCodec
from kubenas.space.mutation import crossover, mutate
from kubenas.space.params import (
    ActiveIf,
    AllOf,
    Categorical,
    Integer,
    Param,
    ParamSpace,
    Point,
    Value,
    all_of,
    from_unit_vector,
    grid_values,
    key_of,
)
from kubenas.strategies.cmaes import CMAESSearcher
from kubenas.strategies.evolution import EvolutionSearcher
from kubenas.strategies.gp import GPSearcher
from kubenas.strategies.grid import Grid
from kubenas.strategies.pbt import PBTSettings, explore
from kubenas.strategies.reinforce import ReinforceSearcher
from kubenas.strategies.searcher import Observation, RandomSearcher, Searcher
from kubenas.strategies.tpe import TPESearcher
from kubenas_trainer.spec import CONV_LAYERS, RECURRENT_LAYERS, LayerType

MIXED = SearchSpace.model_validate(
    {
        "layers": {
            "count": {"min": 1, "max": 3},
            "types": ["dense", "conv1d", "lstm"],
            "units": {"values": [8, 16]},
            "activations": ["relu", "tanh"],
            "kernelSizes": {"values": [3, 5]},
            "pooling": ["none", "max"],
            "bidirectional": [False, True],
        },
        "hyperparameters": {"optimizers": ["adam", "sgd"], "batchSize": {"values": [16, 32]}},
    }
)


def names(params: Sequence[Param]) -> set[str]:
    return {p.name for p in params}


def assert_fields_match_types(codec: CandidateCodec, point: Point) -> None:
    """The point is in the space, and a type-specific field is there exactly where its type takes it."""
    assert codec.space.contains(point), point
    count = point[COUNT]
    assert isinstance(count, int)
    for i in range(count):
        kind = LayerType(str(point[f"layers[{i}].type"]))
        assert (f"layers[{i}].kernelSize" in point) == (kind in CONV_LAYERS)
        assert (f"layers[{i}].pooling" in point) == (kind in CONV_LAYERS)
        assert (f"layers[{i}].bidirectional" in point) == (kind in RECURRENT_LAYERS)


def test_a_conv_field_is_active_on_conv_layers_only() -> None:
    codec = CandidateCodec(MIXED)
    base: Point = {COUNT: 2, "layers[0].type": "dense", "layers[1].type": "conv1d"}
    active = names(codec.space.active(base))
    assert "layers[0].units" in active and "layers[1].units" in active
    assert "layers[0].kernelSize" not in active and "layers[0].pooling" not in active
    assert "layers[1].kernelSize" in active and "layers[1].pooling" in active
    assert "layers[0].bidirectional" not in active and "layers[1].bidirectional" not in active
    lstm = names(codec.space.active({**base, "layers[0].type": "lstm"}))
    assert "layers[0].bidirectional" in lstm and "layers[0].kernelSize" not in lstm
    # Beyond the count nothing of layer 2 exists, whatever type the point claims for it.
    stale = names(codec.space.active({**base, "layers[2].type": "conv1d"}))
    assert not any(n.startswith("layers[2].") for n in stale)


def test_type_conditions_only_where_the_types_differ() -> None:
    def space(types: list[str]) -> CandidateCodec:
        layers = {"count": {"min": 1, "max": 2}, "types": types, "kernelSizes": {"values": [3, 5]}}
        return CandidateCodec(SearchSpace.model_validate({"layers": layers}))

    dense = space(["dense", "lstm"])
    assert not any(p.name.endswith((".kernelSize", ".pooling")) for p in dense.space.params)
    conv = space(["conv1d", "conv2d"])
    kernel = conv.space.by_name("layers[1].kernelSize")
    assert kernel.condition == ActiveIf(COUNT, 2)  # every type takes it: the count condition only
    mixed = CandidateCodec(MIXED).space.by_name("layers[1].kernelSize")
    assert mixed.condition == AllOf((ActiveIf(COUNT, 2), ActiveIf("layers[1].type", one_of=("conv1d",))))


def test_codec_round_trips_and_decodes_no_field_a_type_does_not_take() -> None:
    codec = CandidateCodec(MIXED)
    rng = np.random.default_rng(0)
    for _ in range(300):
        point = codec.space.sample(rng)
        assert_fields_match_types(codec, point)
        candidate = codec.decode(point)
        for layer in candidate.architecture.layers:
            assert (layer.kernel_size is not None) == (layer.type in CONV_LAYERS)
            assert layer.bidirectional is None or layer.type in RECURRENT_LAYERS
        assert set(codec.encode(candidate)) == set(point)  # values may be rounded (the rate)
        assert codec.decode(codec.encode(candidate)) == candidate


def test_grid_enumerates_each_dense_candidate_once() -> None:
    space = SearchSpace.model_validate(
        {
            "layers": {
                "count": {"min": 1, "max": 2},
                "types": ["dense", "conv1d"],
                "units": {"values": [8]},
                "activations": ["relu"],
                "dropout": {"values": [0.0]},
                "kernelSizes": {"values": [3, 5]},
            },
            "hyperparameters": {
                "learningRate": {"values": [0.01]},
                "optimizers": ["adam"],
                "batchSize": {"values": [16]},
            },
        }
    )
    codec = CandidateCodec(space)
    grid = Grid(codec.space, 3)
    per_layer = 1 + 2  # dense, or conv1d with kernel 3 or 5
    assert grid.size == per_layer + per_layer**2 == 12
    candidates = [codec.decode(grid.point(i)) for i in range(grid.size)]
    keys = [c.key() for c in candidates]
    assert len(set(keys)) == grid.size
    all_dense = [c for c in candidates if all(layer.type == "dense" for layer in c.architecture.layers)]
    assert len(all_dense) == 2  # one 1-layer and one 2-layer dense net
    with pytest.raises(IndexError):
        grid.point(grid.size)


def brute_force(space: ParamSpace, points: int) -> set[tuple[tuple[str, Value], ...]]:
    """Every point, by enumerating all values of every parameter and dropping the inactive ones."""
    out = set()
    for combo in itertools.product(*(grid_values(p, points) for p in space.params)):
        full = dict(zip((p.name for p in space.params), combo, strict=True))
        out.add(key_of({p.name: full[p.name] for p in space.active(full)}))
    return out


def test_grid_matches_brute_force_on_chained_conditions() -> None:
    space = ParamSpace(
        (
            Integer("n", 0, 2),
            Categorical("kind", ("a", "b", "c")),
            Categorical("x", (1, 2), ActiveIf("kind", one_of=("b", "c"))),
            Categorical("y", (1, 2, 3), all_of(ActiveIf("n", 1), ActiveIf("kind", one_of=("c",)))),
            Categorical("z", ("p", "q"), ActiveIf("y", one_of=(3,))),  # inactive whenever y is
            Integer("w", 1, 2, condition=ActiveIf("n", 2)),
        )
    )
    grid = Grid(space, 3)
    points = [grid.point(i) for i in range(grid.size)]
    assert all(space.contains(p) for p in points)
    assert len({key_of(p) for p in points}) == len(points)
    assert {key_of(p) for p in points} == brute_force(space, 3)


def test_sampling_mutation_and_crossover_keep_fields_to_their_types() -> None:
    codec = CandidateCodec(MIXED)
    rng = np.random.default_rng(1)
    population = [codec.space.sample(rng) for _ in range(20)]
    for step in range(400):
        parent = population[step % len(population)]
        child = mutate(codec.space, parent, rng)
        assert_fields_match_types(codec, child)
        other = population[int(rng.integers(len(population)))]
        mixed = crossover(codec.space, child, other, rng)
        assert_fields_match_types(codec, mixed)
        population[step % len(population)] = mixed
    x = rng.uniform(size=(50, len(codec.space.params)))
    for row in x:
        assert_fields_match_types(codec, from_unit_vector(codec.space, row))


def test_mutating_a_layer_type_draws_and_drops_its_fields() -> None:
    codec = CandidateCodec(MIXED)
    rng = np.random.default_rng(2)
    point = codec.space.complete({COUNT: 1, "layers[0].type": "dense"}, rng)
    assert "layers[0].kernelSize" not in point
    conv = codec.space.complete({**point, "layers[0].type": "conv1d"}, rng)
    assert conv["layers[0].kernelSize"] in (3, 5) and "layers[0].pooling" in conv
    back = codec.space.complete({**conv, "layers[0].type": "dense"}, rng)
    assert back == point


@pytest.mark.parametrize(
    "searcher",
    [RandomSearcher, TPESearcher, ReinforceSearcher, CMAESSearcher, GPSearcher, EvolutionSearcher],
)
def test_searchers_propose_only_active_fields(searcher: type[Searcher]) -> None:
    codec = CandidateCodec(MIXED)
    rng = np.random.default_rng(3)
    settings = {
        TPESearcher: {"nStartupTrials": 4},
        GPSearcher: {"nStartupTrials": 4, "candidates": 32},
        CMAESSearcher: {"populationSize": 4},
        EvolutionSearcher: {"populationSize": 4, "sampleSize": 2, "crossoverProbability": 0.5},
    }.get(searcher, {})
    instance = searcher(codec.space, 5, searcher.Settings.model_validate(settings))
    observations = []
    for index in range(12):
        point = codec.space.sample(rng)
        score = float(sum(1 for k in point if k.endswith(".kernelSize")))
        observations.append(Observation(index, point, score))
    for point in instance.propose(observations, 12, 6):
        assert_fields_match_types(codec, point)


def test_pbt_explore_follows_a_changed_parent() -> None:
    space = ParamSpace(
        (
            Categorical("hyperparameters.kind", ("a", "b")),
            Integer("hyperparameters.x", 1, 9, condition=ActiveIf("hyperparameters.kind", one_of=("b",))),
        )
    )
    settings = PBTSettings(resample_probability=0.0)
    explored = [
        explore(space, {"hyperparameters.kind": "a"}, settings, np.random.default_rng(s)) for s in range(8)
    ]
    new, log = next((p, log) for p, log in explored if p["hyperparameters.kind"] == "b")
    assert space.contains(new) and any(line.startswith("hyperparameters.x: unset ->") for line in log)
    back = [explore(space, new, settings, np.random.default_rng(s))[0] for s in range(8)]
    assert {"hyperparameters.kind": "a"} in back
    assert all(space.contains(p) for p in back)


def test_conditions_are_checked() -> None:
    with pytest.raises(ValueError, match="exactly one of at_least and one_of"):
        ActiveIf("n")
    with pytest.raises(ValueError, match="exactly one of at_least and one_of"):
        ActiveIf("n", 1, one_of=(1,))
    with pytest.raises(ValueError, match="condition on 'k', not an earlier one"):
        ParamSpace(
            (
                Integer("n", 1, 2),
                Categorical("a", (1,), all_of(ActiveIf("n", 1), ActiveIf("k", one_of=("x",)))),
                Categorical("k", ("x",)),
            )
        )
    assert all_of(None, None) is None
    assert all_of(ActiveIf("n", 1), None) == ActiveIf("n", 1)
