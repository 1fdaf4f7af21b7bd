"""Caching evaluated candidates and warm-starting from another experiment's trials."""

from dataclasses import replace

import pytest
from kubenas.api import NASExperimentSpec, TrialPhase
from kubenas.engine.records import TrialRecord, trial_name
from kubenas.engine.reuse import ResultCache, warm_start
from kubenas.space.encoding import CandidateCodec
from kubenas.strategies import STRATEGIES, make_strategy
from kubenas.strategies.base import next_index

SPEC = NASExperimentSpec.model_validate(
    {
        "searchSpace": {
            "layers": {"count": {"min": 1, "max": 3}, "activations": ["relu", "tanh"]},
            "hyperparameters": {"optimizers": ["adam", "sgd"]},
        },
        "strategy": {"name": "evolution", "seed": 1, "settings": {"populationSize": 4, "sampleSize": 2}},
    }
)


def finished(spec: NASExperimentSpec, n: int, phase: TrialPhase = TrialPhase.SUCCEEDED) -> list[TrialRecord]:
    candidates = make_strategy(
        spec.model_copy(
            update={"strategy": spec.strategy.model_copy(update={"name": "random", "settings": {}})}
        )
    ).ask([], n)
    return [
        TrialRecord(
            trial_name("old", i),
            i,
            i,
            c,
            phase,
            {"accuracy": 0.1 * i} if phase is TrialPhase.SUCCEEDED else {},
        )
        for i, c in enumerate(candidates)
    ]


def test_an_identical_candidate_reuses_the_earliest_success() -> None:
    trials = finished(SPEC, 3)
    again = replace(trials[1], name="old-7", index=7, metrics={"accuracy": 0.9})
    cache = ResultCache([again, *trials])
    # the same candidate rebuilt from scratch (other object, same content) hits
    twin = CandidateCodec(SPEC.search_space).decode(
        CandidateCodec(SPEC.search_space).encode(trials[1].candidate)
    )
    hit = cache.lookup(twin)
    assert hit is not None and hit.name == "old-1" and hit.metrics == trials[1].metrics


def test_failed_and_running_trials_are_not_reused() -> None:
    cache = ResultCache(finished(SPEC, 2, TrialPhase.FAILED))
    assert len(cache) == 0
    running = finished(SPEC, 2, TrialPhase.RUNNING)
    assert ResultCache(running).lookup(running[0].candidate) is None


def test_warm_start_records_take_negative_indices_and_keep_results() -> None:
    source = [*finished(SPEC, 4), replace(finished(SPEC, 5, TrialPhase.FAILED)[4], index=4)]
    warm = warm_start("old", source)
    assert [t.index for t in warm] == [-4, -3, -2, -1]
    assert [t.name for t in warm] == ["old/old-0", "old/old-1", "old/old-2", "old/old-3"]
    assert next_index(warm) == 0
    assert [t.metrics for t in warm] == [t.metrics for t in source[:4]]


def test_evolution_warm_started_mutates_the_warm_population_at_once() -> None:
    warm = warm_start("old", finished(SPEC, 6))
    codec = CandidateCodec(SPEC.search_space)
    warm_points = [codec.encode(t.candidate) for t in warm]
    for child in make_strategy(SPEC).ask(warm, 3):
        point = codec.encode(child)
        assert any(one_mutation_apart(point, parent) for parent in warm_points)


def one_mutation_apart(child: dict[str, object], parent: dict[str, object]) -> bool:
    """One decision changed, or one layer added or removed at the end with the rest kept."""
    count = "layers.count"
    if child[count] == parent[count]:
        return sum(child[k] != parent[k] for k in child) == 1
    common = (set(child) & set(parent)) - {count}
    return abs(int(child[count]) - int(parent[count])) == 1 and all(child[k] == parent[k] for k in common)  # type: ignore[call-overload]


# PBT's schedule must fit maxTrials: 5 members x ceil(training.epochs 10 / 5) generations.
WARM_SETTINGS: dict[str, dict[str, object]] = {"pbt": {"populationSize": 5, "interval": 5}}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_accepts_a_warm_start(name: str) -> None:
    settings = WARM_SETTINGS.get(name, {})
    spec = SPEC.model_copy(
        update={
            "strategy": SPEC.strategy.model_copy(update={"name": name, "settings": settings}),
            "budget": SPEC.budget.model_copy(update={"max_trials": 20}),  # miha's schedule needs 17
        }
    )
    warm = warm_start("old", finished(SPEC, 12))
    first = make_strategy(spec).ask(warm, 3)
    # A strategy that continues one lineage (miha) offers its first trial alone: the rest start from it.
    assert len(first) == (1 if name == "miha" else 3)
    assert [c.key() for c in make_strategy(spec).ask(warm, 3)] == [c.key() for c in first]
