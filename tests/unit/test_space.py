import numpy as np
import pytest
from kubenas.api import FloatDomain, IntDomain, SearchSpace
from kubenas.api.errors import SpecError, parse_model
from kubenas.space import sample_candidate, sample_float, sample_int


def test_int_range_samples_stay_in_bounds_and_cover_it() -> None:
    rng = np.random.default_rng(0)
    domain = IntDomain(min=2, max=5)
    seen = {sample_int(domain, rng) for _ in range(200)}
    assert seen == {2, 3, 4, 5}


def test_log_int_range_stays_in_bounds() -> None:
    rng = np.random.default_rng(1)
    values = [sample_int(IntDomain(min=16, max=512, log=True), rng) for _ in range(500)]
    assert min(values) >= 16 and max(values) <= 512
    assert np.median(values) < 200  # log scale favours small values over a linear draw (median ~264)


def test_log_float_range_spreads_over_decades() -> None:
    rng = np.random.default_rng(2)
    values = np.array([sample_float(FloatDomain(min=1e-4, max=1e-1, log=True), rng) for _ in range(1000)])
    assert values.min() >= 1e-4 and values.max() <= 1e-1
    assert 0.2 < np.mean(values < 1e-3) < 0.45  # one decade of three


def test_candidate_respects_every_choice() -> None:
    space = SearchSpace.model_validate(
        {
            "layers": {
                "count": {"values": [2, 4]},
                "units": {"min": 8, "max": 16, "step": 8},
                "activations": ["tanh"],
                "dropout": {"min": 0.1, "max": 0.2},
            },
            "hyperparameters": {
                "optimizers": ["sgd"],
                "batchSize": {"values": [7]},
                "learningRate": {"values": [0.5]},
            },
        }
    )
    for seed in range(20):
        c = sample_candidate(space, np.random.default_rng(seed))
        assert len(c.architecture.layers) in (2, 4)
        for layer in c.architecture.layers:
            assert layer.units in (8, 16) and layer.activation == "tanh" and 0.1 <= layer.dropout <= 0.2
        assert c.hyperparameters.optimizer == "sgd" and c.hyperparameters.batch_size == 7
        assert c.hyperparameters.learning_rate == 0.5


def test_candidate_key_is_canonical() -> None:
    space = SearchSpace()
    a = sample_candidate(space, np.random.default_rng(3))
    b = type(a).model_validate(a.to_dict())
    assert a.key() == b.key()
    assert a.key() != sample_candidate(space, np.random.default_rng(4)).key()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"values": [1], "min": 1, "max": 2}, "set either values, or both min and max"),
        ({"min": 1}, "set either values, or both min and max"),
        ({"min": 5, "max": 2}, "min must be <= max"),
        ({"min": 0, "max": 2, "log": True}, "log scale needs min > 0"),
        ({"values": []}, "at least 1 item"),
    ],
)
def test_bad_domains_name_the_rule(data: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError) as error:
        parse_model(IntDomain, data, prefix="units")
    assert message in str(error.value)
    assert str(error.value).startswith("units")


def test_layer_count_out_of_range_is_rejected() -> None:
    with pytest.raises(SpecError, match=r"searchSpace.layers: count: layer count must lie in \[1, 64\]"):
        parse_model(SearchSpace, {"layers": {"count": {"min": 0, "max": 3}}}, prefix="searchSpace")
