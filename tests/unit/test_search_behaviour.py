"""Search algorithms learn: on a synthetic objective they beat random search over generations."""

import numpy as np
from kubenas.space.params import Categorical, ParamSpace
from kubenas.strategies.evolution import EvolutionSearcher, EvolutionSettings
from kubenas.strategies.reinforce import ReinforceSearcher
from kubenas.strategies.searcher import Observation, RandomSearcher, Searcher

# Six decisions of five options; the score counts the decisions that match a hidden target.
SPACE = ParamSpace(tuple(Categorical(f"x{i}", tuple(range(5))) for i in range(6)))
TARGET = {f"x{i}": (3 * i) % 5 for i in range(6)}


def score(point: dict[str, object]) -> float:
    return float(sum(point[k] == v for k, v in TARGET.items()))


def scores(searcher: Searcher, n: int, parallel: int = 4) -> np.ndarray:
    """Run n trials, `parallel` proposals per ask (the pending ones are scored after the ask)."""
    observations: list[Observation] = []
    while len(observations) < n:
        for point in searcher.propose(observations, len(observations), min(parallel, n - len(observations))):
            observations.append(Observation(len(observations), point, score(point)))
    return np.array([o.score for o in observations])


def late_mean(make: type[Searcher], n: int, **kwargs: object) -> tuple[float, float]:
    """Mean score of the first 20 and of the last 40 trials, over three seeds."""
    runs = np.array([scores(make(SPACE, seed, **kwargs), n) for seed in range(3)])  # type: ignore[arg-type]
    return float(runs[:, :20].mean()), float(runs[:, -40:].mean())


def test_random_search_does_not_improve() -> None:
    _, late = late_mean(RandomSearcher, 120)
    assert late < 1.8  # expected 6 x 1/5 = 1.2 matches


def test_regularized_evolution_improves_over_generations() -> None:
    early, late = late_mean(
        EvolutionSearcher, 120, settings=EvolutionSettings(population_size=20, sample_size=5)
    )
    assert early < 1.8 and late > 3.0


def test_reinforce_improves_over_generations() -> None:
    early, late = late_mean(ReinforceSearcher, 120)
    assert late > early + 1.0 and late > 3.0
