"""PBT's exploit and explore: the bottom quantile copies the top one, hyperparameters perturbed, logged."""

import numpy as np
import pytest
from kubenas.api import SearchSpace
from kubenas.api.errors import SpecError, parse_model
from kubenas.space.encoding import COUNT, CandidateCodec
from kubenas.strategies.pbt import Member, PBTSettings, exploit_and_explore, explore

SPACE = CandidateCodec(
    SearchSpace.model_validate(
        {
            "layers": {"count": {"min": 1, "max": 3}, "activations": ["relu", "tanh"]},
            "hyperparameters": {
                "learningRate": {"min": 1e-4, "max": 1e-1, "log": True},
                "optimizers": ["adam", "adamw", "sgd"],
                "batchSize": {"min": 16, "max": 256},
            },
        }
    )
).space


def population(n: int) -> list[Member]:
    rng = np.random.default_rng(0)
    return [Member(f"t-{i}", SPACE.sample(rng), float(i)) for i in range(n)]


def test_the_bottom_quantile_copies_the_top_quantile() -> None:
    members = population(8)
    rounds = exploit_and_explore(SPACE, members, seed=1, step=3, settings=PBTSettings(quantile=0.25))
    assert {r.target for r in rounds} == {"t-0", "t-1"}  # the two worst of eight
    assert all(r.source in ("t-6", "t-7") for r in rounds)
    by_name = {m.name: m for m in members}
    for r in rounds:
        source = by_name[r.source].point
        assert SPACE.contains(r.point)
        # the architecture is the source's (its weights are copied); only hyperparameters moved
        assert {k: v for k, v in r.point.items() if not k.startswith("hyperparameters.")} == {
            k: v for k, v in source.items() if not k.startswith("hyperparameters.")
        }
        assert r.log[0].startswith(f"{r.target} (score") and r.source in r.log[0]
        changed = [k for k in r.point if r.point[k] != source[k]]
        assert len(r.log) == 1 + len(changed)  # one readable line per change
        assert all(any(line.startswith(f"{k}: ") for line in r.log) for k in changed)
    assert rounds == exploit_and_explore(SPACE, members, seed=1, step=3, settings=PBTSettings(quantile=0.25))


def test_explore_multiplies_numbers_by_a_factor_or_resamples() -> None:
    rng = np.random.default_rng(2)
    point = {**SPACE.sample(rng), "hyperparameters.learningRate": 0.01}
    seen = set()
    for _ in range(50):
        new, log = explore(SPACE, point, PBTSettings(resample_probability=0.0), rng)
        rate = new["hyperparameters.learningRate"]
        assert rate == pytest.approx(0.008) or rate == pytest.approx(0.012)
        seen.update(line.split(" (")[-1] for line in log if "learningRate" in line)
        assert new[COUNT] == point[COUNT]
    assert seen == {"x0.8)", "x1.2)"}


def test_pbt_settings_name_the_rule() -> None:
    with pytest.raises(SpecError, match=r"spec.strategy.settings: factors must be \(low, high\)"):
        parse_model(PBTSettings, {"factors": [1.2, 0.8]}, prefix="spec.strategy.settings")
