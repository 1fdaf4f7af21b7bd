"""Conformance tests every registered strategy must pass."""

import pytest
from kubenas.api import NASExperimentSpec, TrialPhase
from kubenas.api.errors import SpecError
from kubenas.strategies import STRATEGIES, make_strategy
from kubenas.trials import TrialRecord, trial_name, trial_seed

SPEC = {
    "searchSpace": {
        "layers": {
            "count": {"min": 1, "max": 4},
            "units": {"min": 8, "max": 64, "log": True},
            "activations": ["relu", "tanh"],
            "dropout": {"min": 0, "max": 0.5},
        },
        "hyperparameters": {"optimizers": ["adam", "sgd"], "batchSize": {"values": [16, 32]}},
    },
    "budget": {"maxTrials": 20, "parallelTrials": 4},
}


def spec_for(name: str, seed: int = 3) -> NASExperimentSpec:
    return NASExperimentSpec.model_validate({**SPEC, "strategy": {"name": name, "seed": seed}})


def history_of(spec: NASExperimentSpec, n: int) -> list[TrialRecord]:
    """Run the strategy for n trials, scoring each with a synthetic objective."""
    strategy = make_strategy(spec)
    history: list[TrialRecord] = []
    while len(history) < n:
        for candidate in strategy.ask(history, min(3, n - len(history))):
            index = len(history)
            score = sum(layer.units for layer in candidate.architecture.layers) / 256
            history.append(
                TrialRecord(
                    trial_name("x", index),
                    index,
                    trial_seed(spec.strategy.seed, index),
                    candidate,
                    TrialPhase.SUCCEEDED,
                    {"accuracy": score},
                )
            )
    return history


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_candidates_lie_in_the_space(name: str) -> None:
    space = spec_for(name).search_space
    for trial in history_of(spec_for(name), 12):
        layers = trial.candidate.architecture.layers
        assert 1 <= len(layers) <= 4
        assert all(8 <= layer.units <= 64 and layer.activation in ("relu", "tanh") for layer in layers)
        assert all(0 <= layer.dropout <= 0.5 for layer in layers)
        assert trial.candidate.hyperparameters.batch_size in (16, 32)
        assert trial.candidate.hyperparameters.optimizer in space.hyperparameters.optimizers


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_same_seed_same_sequence_other_seed_other_sequence(name: str) -> None:
    keys = [t.candidate.key() for t in history_of(spec_for(name, seed=5), 8)]
    assert keys == [t.candidate.key() for t in history_of(spec_for(name, seed=5), 8)]
    assert keys != [t.candidate.key() for t in history_of(spec_for(name, seed=6), 8)]


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_restart_from_recorded_history_continues_identically(name: str) -> None:
    spec = spec_for(name)
    full = history_of(spec, 10)
    restarted = make_strategy(spec)  # a fresh object, as after an operator restart
    proposed = restarted.ask(full[:6], 4)
    assert [c.key() for c in proposed] == [t.candidate.key() for t in full[6:10]]


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_ask_respects_the_count(name: str) -> None:
    strategy = make_strategy(spec_for(name))
    assert len(strategy.ask([], 3)) <= 3
    assert strategy.ask([], 0) == []


def test_unknown_strategy_is_named() -> None:
    spec = NASExperimentSpec.model_validate({"strategy": {"name": "annealing"}})
    with pytest.raises(SpecError, match=r"spec.strategy.name: unknown strategy 'annealing'; must be one of"):
        make_strategy(spec)


def test_random_rejects_settings_it_does_not_know() -> None:
    spec = NASExperimentSpec.model_validate(
        {"strategy": {"name": "random", "settings": {"populationSize": 3}}}
    )
    with pytest.raises(
        SpecError, match=r"spec.strategy.settings.populationSize: Extra inputs are not permitted"
    ):
        make_strategy(spec)
