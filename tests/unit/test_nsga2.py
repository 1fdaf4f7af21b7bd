"""NSGA-II: non-dominated sorting, crowding, the Pareto front, and a front better than random search's."""

import numpy as np
from kubenas.api import TrialPhase
from kubenas.api.experiment import MetricGoal
from kubenas.engine.records import TrialRecord
from kubenas.space.params import Integer, ParamSpace
from kubenas.strategies.nsga2 import (
    NSGA2Searcher,
    NSGA2Settings,
    Scored,
    crowding,
    fronts,
    pareto_front,
)
from kubenas.strategies.searcher import RandomSearcher
from kubenas_trainer.spec import Candidate


def scored(*scores: tuple[float, float]) -> list[Scored]:
    return [Scored(i, {}, s) for i, s in enumerate(scores)]


def test_fronts_sort_by_domination_and_crowding_favours_the_edges() -> None:
    items = scored((3, 1), (2, 2), (1, 3), (1, 1), (0, 0))
    assert [[m.index for m in f] for f in fronts(items)] == [[0, 1, 2], [3], [4]]
    distance = crowding(fronts(items)[0])
    assert distance[0] == distance[2] == float("inf") and 0 < distance[1] < float("inf")


def test_pareto_front_of_trials_respects_each_goal_direction() -> None:
    candidate = Candidate.model_validate(
        {
            "architecture": {"layers": [{"type": "dense", "units": 8, "activation": "relu"}]},
            "hyperparameters": {"learningRate": 0.01, "optimizer": "adam", "batchSize": 8},
        }
    )
    metrics = [(0.9, 5.0), (0.8, 1.0), (0.7, 2.0), (0.95, 9.0)]  # (accuracy up, trainingSeconds down)
    trials = [
        TrialRecord(f"t-{i}", i, i, candidate, TrialPhase.SUCCEEDED, {"accuracy": a, "trainingSeconds": s})
        for i, (a, s) in enumerate(metrics)
    ]
    trials.append(TrialRecord("t-4", 4, 4, candidate, TrialPhase.FAILED))
    goals = [MetricGoal(metric="accuracy"), MetricGoal(metric="trainingSeconds")]
    assert [t.name for t in pareto_front(trials, goals)] == ["t-0", "t-1", "t-3"]  # t-2 is dominated by t-1


# Two conflicting objectives over ten integers in 0..9: the sum, and minus the distance to 3.
SPACE = ParamSpace(tuple(Integer(f"x{i}", 0, 9) for i in range(10)))


def objectives(point: dict[str, object]) -> tuple[float, float]:
    values = np.array([point[f"x{i}"] for i in range(10)], dtype=float)
    return float(values.sum()), -float(np.abs(values - 3).sum())


def hypervolume(points: list[tuple[float, float]], reference: tuple[float, float] = (0.0, -70.0)) -> float:
    """Area dominated by the points above the reference (both objectives maximised)."""
    front = sorted({p for p in points if not any(q[0] >= p[0] and q[1] >= p[1] and q != p for q in points)})
    area, last_y = 0.0, reference[1]
    for x, y in sorted(front, key=lambda p: -p[0]):
        if y > last_y:
            area += (x - reference[0]) * (y - last_y)
            last_y = y
    return area


def test_nsga2_finds_a_better_front_than_random_search() -> None:
    gains = []
    for seed in range(3):
        evolved: list[Scored] = []
        searcher = NSGA2Searcher(SPACE, seed, NSGA2Settings(populationSize=12))
        while len(evolved) < 150:
            for point in searcher.propose(evolved, len(evolved), len(evolved), 4):
                evolved.append(Scored(len(evolved), point, objectives(point)))
        random = [objectives(p) for p in RandomSearcher(SPACE, seed).propose([], 0, 150)]
        gains.append(hypervolume([m.scores for m in evolved]) / hypervolume(random))
    assert min(gains) > 1.05
