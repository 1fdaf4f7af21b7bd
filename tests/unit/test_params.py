"""The flat parameter space, the kubenas encoding and the variation operators."""

import numpy as np
import pytest
from kubenas.api import SearchSpace
from kubenas.space import sample_candidate
from kubenas.space.encoding import COUNT, CandidateCodec
from kubenas.space.mutation import crossover, mutate
from kubenas.space.params import (
    ActiveIf,
    Categorical,
    Integer,
    ParamSpace,
    Real,
    from_unit,
    from_unit_vector,
    grid_values,
    to_unit,
    unit_vector,
)

SEARCH_SPACE = SearchSpace.model_validate(
    {
        "layers": {
            "count": {"min": 1, "max": 3},
            "units": {"min": 8, "max": 512, "log": True},
            "activations": ["relu", "tanh", "gelu"],
            "dropout": {"min": 0.0, "max": 0.5},
        },
        "hyperparameters": {
            "learningRate": {"min": 1e-4, "max": 1e-1, "log": True},
            "optimizers": ["adam", "sgd"],
            "batchSize": {"values": [16, 64]},
        },
    }
)


def test_candidates_round_trip_through_points() -> None:
    codec = CandidateCodec(SEARCH_SPACE)
    rng = np.random.default_rng(0)
    for _ in range(50):
        candidate = sample_candidate(SEARCH_SPACE, rng)
        point = codec.encode(candidate)
        assert codec.space.contains(point)
        assert codec.decode(point) == candidate


def test_layer_parameters_exist_only_below_the_count() -> None:
    codec = CandidateCodec(SEARCH_SPACE)
    names = [p.name for p in codec.space.params]
    assert names[0] == COUNT and "layers[2].units" in names and "hyperparameters.batchSize" in names
    rng = np.random.default_rng(1)
    three = codec.space.complete({COUNT: 3}, rng)
    assert codec.space.contains(three) and "layers[2].units" in three
    one = codec.space.complete({**three, COUNT: 1}, rng)
    assert codec.space.contains(one) and "layers[1].units" not in one
    assert one["layers[0].units"] == three["layers[0].units"]
    assert not codec.space.contains({**three, COUNT: 1})  # layer 1's settings without layer 1


def test_sampled_points_decode_into_the_space() -> None:
    codec = CandidateCodec(SEARCH_SPACE)
    rng = np.random.default_rng(2)
    for _ in range(50):
        point = codec.space.sample(rng)
        assert codec.space.contains(point)
        candidate = codec.decode(point)
        assert len(candidate.architecture.layers) == point[COUNT]
        assert all(8 <= layer.units <= 512 for layer in candidate.architecture.layers)


def test_conditions_must_refer_to_earlier_parameters() -> None:
    with pytest.raises(ValueError, match="condition on 'n', not an earlier one"):
        ParamSpace((Categorical("a", (1,), ActiveIf("n", 1)), Integer("n", 1, 2)))


def test_unit_scale_is_logarithmic_where_asked_and_snaps_integers() -> None:
    rate = Real("lr", 1e-4, 1e-2, log=True)
    assert from_unit(rate, 0.5) == pytest.approx(1e-3)
    assert to_unit(rate, 1e-3) == pytest.approx(0.5)
    width = Integer("w", 8, 72, step=8)
    assert from_unit(width, 0.3) in range(8, 73, 8)
    assert grid_values(width, 3) == (8, 40, 72)
    assert grid_values(Integer("k", 1, 3), 5) == (1, 2, 3)


def test_unit_vectors_decode_to_the_same_point() -> None:
    space = CandidateCodec(SEARCH_SPACE).space
    point = space.sample(np.random.default_rng(3))
    decoded = from_unit_vector(space, unit_vector(space, point))
    assert {k: v for k, v in decoded.items() if not isinstance(v, float)} == {
        k: v for k, v in point.items() if not isinstance(v, float)
    }
    assert all(decoded[k] == pytest.approx(v) for k, v in point.items() if isinstance(v, float))


def test_a_mutation_changes_exactly_one_decision() -> None:
    codec = CandidateCodec(SEARCH_SPACE)
    rng = np.random.default_rng(4)
    kinds = set()
    for _ in range(300):
        parent = codec.space.sample(rng)
        child = mutate(codec.space, parent, rng)
        assert codec.space.contains(child) and child != parent
        if child[COUNT] != parent[COUNT]:  # a layer added or removed at the end, the others kept
            kinds.add("count")
            kept = min(child[COUNT], parent[COUNT])  # type: ignore[type-var]
            assert all(
                child[k] == v
                for k, v in parent.items()
                if k.startswith(tuple(f"layers[{i}]" for i in range(int(kept))))
            )
        else:
            changed = [k for k in parent if parent[k] != child[k]]
            assert len(changed) == 1
            kinds.add(changed[0].split(".")[-1])
    assert kinds == {"count", "units", "activation", "dropout", "learningRate", "optimizer", "batchSize"}


def test_crossover_takes_each_decision_from_a_parent() -> None:
    codec = CandidateCodec(SEARCH_SPACE)
    rng = np.random.default_rng(5)
    a, b = codec.space.sample(rng), codec.space.sample(rng)
    for _ in range(20):
        child = crossover(codec.space, a, b, rng)
        assert codec.space.contains(child)
        assert all(child[k] in (a.get(k), b.get(k)) for k in child)
