"""Conformance tests every registered strategy must pass."""

from dataclasses import dataclass, replace

import pytest
from kubenas.api import ExperimentPhase, NASExperimentSpec, NASExperimentStatus, NASTrialStatus, TrialPhase
from kubenas.api.errors import SpecError
from kubenas.engine.decide import decide
from kubenas.engine.records import TrialRecord, record, trial_name
from kubenas.seeds import trial_seed
from kubenas.strategies import STRATEGIES, make_strategy
from kubenas.strategies.base import Proposal
from kubenas_trainer.spec import Candidate

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
# Small settings so the model-based strategies leave their random start within the tests' budgets.
SETTINGS: dict[str, dict[str, object]] = {
    "evolution": {"populationSize": 5, "sampleSize": 2, "crossoverProbability": 0.5},
    "tpe": {"nStartupTrials": 4},
    "gp": {"nStartupTrials": 4, "candidates": 64},
    "cmaes": {"populationSize": 4},
    "local-search": {"nStartupTrials": 3},
    "bananas": {"nStartupTrials": 4, "ensembleSize": 2, "hiddenUnits": 8, "candidates": 32},
    "bohb": {"minPoints": 4},
    "nsga2": {"populationSize": 4},
    # 4 members x ceil(training.epochs 10 / interval 2) = 5 generations: the 20 trials of maxTrials.
    "pbt": {"populationSize": 4, "interval": 2},
    # One lineage of 1 + 14 clones + 1 + 1 = 17 trials (maxTrials 20), whose trials 1-14 are clones of
    # the run-up: after 8 or 12 settled trials it still offers 3 at once, as the count checks ask. The
    # schedule over several cycles is tested in test_miha.py.
    "miha": {"cycles": 1, "populationSize": 14},
}


def spec_for(
    name: str,
    seed: int = 3,
    space: dict[str, object] | None = None,
    settings: dict[str, object] | None = None,
) -> NASExperimentSpec:
    settings = SETTINGS.get(name, {}) if settings is None else settings
    strategy = {"name": name, "seed": seed, "settings": settings}
    return NASExperimentSpec.model_validate(
        {**SPEC, "searchSpace": space or SPEC["searchSpace"], "strategy": strategy}
    )


def synthetic(candidate: Candidate) -> float:
    return sum(layer.units for layer in candidate.architecture.layers) / 256


def cost(candidate: Candidate) -> float:
    return len(candidate.architecture.layers) + candidate.hyperparameters.batch_size / 32


@dataclass(frozen=True)
class Ask:
    """One call the controller made: what the strategy saw and what it proposed."""

    history: list[TrialRecord]
    count: int
    proposed: list[Proposal]
    done: bool


def run(spec: NASExperimentSpec, n: int, parallel: int = 3) -> tuple[list[TrialRecord], list[Ask]]:
    """Simulate an asynchronous experiment: up to `parallel` trials run; each step the oldest running
    one finishes (every fifth fails) and the strategy fills the free room, seeing pending trials.
    A strategy that proposes fewer than the room without being done waits for one more to finish."""
    strategy = make_strategy(spec)
    history: list[TrialRecord] = []
    asks: list[Ask] = []
    exhausted = waiting = False
    while True:
        running = [t for t in history if t.phase is TrialPhase.PENDING]
        if running and (len(running) >= parallel or len(history) >= n or exhausted or waiting):
            oldest = running[0]
            phase = TrialPhase.FAILED if oldest.index % 5 == 4 else TrialPhase.SUCCEEDED
            accuracy = synthetic(oldest.candidate)
            metrics = {"accuracy": accuracy, "loss": 1 - accuracy, "trainingSeconds": cost(oldest.candidate)}
            metrics = metrics if phase is TrialPhase.SUCCEEDED else {}
            history[oldest.index] = replace(oldest, phase=phase, metrics=metrics)
            waiting = False
            continue
        room = min(parallel - len(running), n - len(history))
        if room <= 0 or exhausted:
            return history, asks
        proposed, exhausted = strategy.propose(list(history), room)
        assert [c.key() for c in strategy.ask(list(history), room)] == [p.candidate.key() for p in proposed]
        asks.append(Ask(list(history), room, proposed, exhausted))
        assert len(proposed) <= room and (proposed or exhausted or running), "waits with nothing running"
        waiting = len(proposed) < room
        for proposal in proposed:
            index = len(history)
            name, seed = trial_name("x", index), trial_seed(spec.strategy.seed, index)
            history.append(
                TrialRecord(
                    name,
                    index,
                    seed,
                    proposal.candidate,
                    start_from=proposal.start_from,
                    stop_at_epoch=proposal.stop_at_epoch,
                    note=proposal.note,
                )
            )


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_candidates_lie_in_the_space(name: str) -> None:
    spec = spec_for(name)
    history, _ = run(spec, 16)
    assert len(history) == 16
    for trial in history:
        layers = trial.candidate.architecture.layers
        assert 1 <= len(layers) <= 4
        assert all(8 <= layer.units <= 64 and layer.activation in ("relu", "tanh") for layer in layers)
        assert all(0 <= layer.dropout <= 0.5 for layer in layers)
        assert trial.candidate.hyperparameters.batch_size in (16, 32)
        assert trial.candidate.hyperparameters.optimizer in spec.search_space.hyperparameters.optimizers
        assert 1e-4 <= trial.candidate.hyperparameters.learning_rate <= 1e-1


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_same_seed_same_sequence_other_seed_other_sequence(name: str) -> None:
    keys = [t.candidate.key() for t in run(spec_for(name, seed=5), 12)[0]]
    assert keys == [t.candidate.key() for t in run(spec_for(name, seed=5), 12)[0]]
    assert keys != [t.candidate.key() for t in run(spec_for(name, seed=6), 12)[0]]


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_restart_from_recorded_history_continues_identically(name: str) -> None:
    """A fresh strategy (as after an operator restart) given the history of any past call, pending
    trials included, proposes exactly what the running one did."""
    _, asks = run(spec_for(name), 16)
    assert len(asks) > 5
    for ask in asks:
        restarted = make_strategy(spec_for(name))
        assert restarted.propose(ask.history, ask.count) == (ask.proposed, ask.done)
        assert restarted.ask(ask.history, ask.count) == [p.candidate for p in ask.proposed]


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_ask_respects_the_count(name: str) -> None:
    strategy = make_strategy(spec_for(name))
    history, _ = run(spec_for(name), 8)
    assert strategy.ask(history, 0) == []
    for count in (1, 3):
        assert len(strategy.ask(history, count)) == count  # the test space is far from exhausted


# A strategy that needs its whole schedule within maxTrials (make_strategy refuses one that does not
# fit) gets settings for 9 trials: miha's run-up, 6 clones, the continuation and the final trial;
# pbt's 3 members x ceil(training.epochs 10 / interval 4) = 3 generations.
FITS_9_TRIALS: dict[str, dict[str, object]] = {
    "miha": {"cycles": 1, "populationSize": 6},
    "pbt": {"populationSize": 3, "interval": 4},
}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_budget_is_respected_through_the_controller(name: str) -> None:
    """Driving decide() to the end never creates more than maxTrials nor runs more than parallelTrials."""
    spec = spec_for(name, settings=FITS_9_TRIALS.get(name))
    spec = spec.model_copy(
        update={"budget": spec.budget.model_copy(update={"max_trials": 9, "parallel_trials": 4})}
    )
    trials: list[TrialRecord] = []
    status = NASExperimentStatus()
    for _ in range(100):
        step = decide("x", spec, trials, status, 1, "2026-01-01T00:00:00Z")
        status = step.status
        if step.finished:
            break
        trials += [record(t.spec, NASTrialStatus(), t.name) for t in step.launch if t.new]
        assert len(trials) <= 9
        assert sum(not t.phase.finished for t in trials) <= 4
        first = next(t for t in trials if not t.phase.finished)
        trials[first.index] = replace(first, phase=TrialPhase.SUCCEEDED, metrics={"accuracy": 0.5})
    assert status.phase is ExperimentPhase.SUCCEEDED and len(trials) == 9


def test_grid_proposes_every_point_once_then_is_exhausted() -> None:
    space = {
        "layers": {"count": {"values": [1, 2]}, "units": {"values": [8, 16]}, "activations": ["relu"]},
        "hyperparameters": {"learningRate": {"values": [0.01]}, "batchSize": {"values": [16, 32]}},
    }
    spec = spec_for("grid", space=space)
    history, asks = run(spec, 100)
    keys = [t.candidate.key() for t in history]
    assert len(keys) == len(set(keys)) == (2 + 2 * 2) * 2  # (1 layer: 2 widths + 2 layers: 2x2) x 2 batch
    assert len(asks[-1].proposed) < asks[-1].count
    step = decide("x", spec, history, NASExperimentStatus(), 1, "2026-01-01T00:00:00Z")
    assert step.finished and step.status.conditions[-1].reason == "SearchSpaceExhausted"


def test_grid_cuts_ranges_into_points_per_range() -> None:
    space = {
        "layers": {
            "count": {"values": [1]},
            "units": {"min": 8, "max": 64, "log": True},
            "activations": ["relu", "tanh"],
            "dropout": {"min": 0, "max": 0.5},
        },
        "hyperparameters": {"optimizers": ["adam", "sgd"], "batchSize": {"values": [16, 32]}},
    }
    spec = spec_for("grid", space=space)
    spec = spec.model_copy(
        update={"strategy": spec.strategy.model_copy(update={"settings": {"pointsPerRange": 2}})}
    )
    history, _ = run(spec, 100)
    learning_rates = {t.candidate.hyperparameters.learning_rate for t in history}
    assert learning_rates == {1e-4, 1e-1}
    assert {t.candidate.architecture.layers[0].units for t in history} == {8, 64}
    assert len(history) == 2**6  # two points each: units, activation, dropout, rate, optimizer, batch


def test_unknown_strategy_is_named() -> None:
    spec = NASExperimentSpec.model_validate({"strategy": {"name": "annealing"}})
    with pytest.raises(SpecError, match=r"spec.strategy.name: unknown strategy 'annealing'; must be one of"):
        make_strategy(spec)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_strategies_reject_settings_they_do_not_know(name: str) -> None:
    spec = NASExperimentSpec.model_validate({"strategy": {"name": name, "settings": {"populationSze": 3}}})
    with pytest.raises(
        SpecError, match=r"spec.strategy.settings.populationSze: Extra inputs are not permitted"
    ):
        make_strategy(spec)


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        (
            "evolution",
            {"populationSize": 4, "sampleSize": 5},
            r"spec.strategy.settings: sampleSize must be <= populationSize "
            r"\(sampleSize=5, populationSize=4\)",
        ),
        (
            "evolution",
            {"populationSize": 1},
            r"settings.populationSize: .*greater than or equal to 2",
        ),
        ("reinforce", {"baselineDecay": 1.0}, r"spec.strategy.settings.baselineDecay: .*less than 1"),
        (
            "grid",
            {"pointsPerRange": 1},
            r"settings.pointsPerRange: .*greater than or equal to 2",
        ),
        (
            "tpe",
            {"nStartupTrials": -1},
            r"settings.nStartupTrials: .*greater than or equal to 0",
        ),
        ("cmaes", {"sigma0": 0}, r"settings.sigma0: .*greater than 0"),
        (
            "nsga2",
            {"objectives": [{"metric": "accuracy"}]},
            r"spec.strategy.settings: objectives must name two or more different metrics",
        ),
        (
            "nsga2",
            {"objectives": [{"metric": "acc"}]},
            r"settings.objectives\[0\].metric: unknown metric 'acc'",
        ),
        ("gp", {"candidates": 3}, r"settings.candidates: .*greater than or equal to 16"),
        ("local-search", {"bins": 1}, r"settings.bins: .*greater than or equal to 2"),
        ("bananas", {"acquisition": "ei"}, r"settings.acquisition: .*'its' or 'ucb'"),
        ("bananas", {"ensembleSize": 1}, r"settings.ensembleSize: .*greater than or equal to 2"),
        ("bohb", {"randomFraction": 1.5}, r"settings.randomFraction: .*less than or equal to 1"),
        ("reinforce", {"normalisation": "minmax"}, r"settings.normalisation: .*'rank' or 'zscore'"),
        ("pbt", {"populationSize": 1}, r"settings.populationSize: .*greater than or equal to 2"),
        ("pbt", {"interval": 0}, r"settings.interval: .*greater than or equal to 1"),
        ("pbt", {"quantile": 0.6}, r"settings.quantile: .*less than or equal to 0.5"),
        ("miha", {"populationSize": 1}, r"settings.populationSize: .*greater than or equal to 2"),
        (
            "miha",
            {"runUpEpochs": 8},
            r"spec.training.epochs: strategy miha needs more than runUpEpochs \+ cycles x "
            r"\(cycleEpochs \+ continueEpochs\) = 14 epochs \(training.epochs=10\)",
        ),
    ],
)
def test_bad_settings_name_the_setting_and_the_rule(
    name: str, settings: dict[str, object], message: str
) -> None:
    spec = NASExperimentSpec.model_validate({"strategy": {"name": name, "settings": settings}})
    with pytest.raises(SpecError, match=message):
        make_strategy(spec)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_non_finite_objective_values_count_as_failures(name: str) -> None:
    spec = spec_for(name)
    history, _ = run(spec, 12)
    poisoned = [replace(t, metrics={"accuracy": float("nan")}) if t.index % 2 else t for t in history]
    proposed = make_strategy(spec).ask(poisoned, 3)
    assert len(proposed) == 3
    assert [c.key() for c in make_strategy(spec).ask(poisoned, 3)] == [c.key() for c in proposed]
