"""ASHA and Hyperband in the controller core: trials pause at rungs, the best of a rung is promoted."""

from __future__ import annotations

import pytest
from kubenas.api import NASExperimentSpec, NASExperimentStatus, TrialPhase
from kubenas.api.errors import SpecError, parse_model
from kubenas.engine.decide import decide
from kubenas.engine.records import TrialRecord, trial_name
from kubenas.strategies import make_strategy

NOW = "2026-01-01T00:00:00Z"


def asha_spec(rule: str = "asha", max_trials: int = 9, parallel: int = 3) -> NASExperimentSpec:
    return NASExperimentSpec.model_validate(
        {
            "budget": {"maxTrials": max_trials, "parallelTrials": parallel},
            "objective": {"metric": "accuracy"},
            "training": {"dataset": "digits", "epochs": 9},
            "earlyStopping": {"rule": rule, "minEpochs": 1, "reductionFactor": 3},
        }
    )


def trial(spec: NASExperimentSpec, index: int, phase: TrialPhase, curve: list[float]) -> TrialRecord:
    candidate = make_strategy(spec).ask([], index + 1)[index]
    return TrialRecord(
        trial_name("exp", index),
        index,
        index,
        candidate,
        phase,
        metrics={"accuracy": curve[-1]} if curve else {},
        epochs=len(curve),
        epoch_metrics=tuple({"epoch": e + 1, "accuracy": v} for e, v in enumerate(curve)),
    )


def test_new_trials_pause_at_the_first_rung() -> None:
    step = decide("exp", asha_spec(), [], NASExperimentStatus(), 1, NOW)
    assert [(t.name, t.stop_at, t.promoted) for t in step.launch] == [
        (f"exp-{i}", 1, False) for i in range(3)
    ]


def test_the_top_third_of_a_rung_is_promoted_to_the_next_rung_before_new_trials() -> None:
    spec = asha_spec()
    observed = [
        trial(spec, 0, TrialPhase.PAUSED, [0.5]),
        trial(spec, 1, TrialPhase.PAUSED, [0.8]),
        trial(spec, 2, TrialPhase.PAUSED, [0.6]),
    ]
    step = decide("exp", spec, observed, NASExperimentStatus(), 1, NOW)
    promoted = [t for t in step.launch if t.promoted]
    assert [(t.name, t.stop_at) for t in promoted] == [("exp-1", 3)]
    assert [(t.name, t.new, t.stop_at) for t in step.launch if not t.promoted] == [
        ("exp-3", True, 1),
        ("exp-4", True, 1),
    ]
    assert step.stop == [] and step.status.trials.paused == 2


def test_a_paused_trial_waits_until_enough_others_reach_its_rung() -> None:
    spec = asha_spec()
    observed = [trial(spec, 0, TrialPhase.PAUSED, [0.9]), trial(spec, 1, TrialPhase.RUNNING, [])]
    step = decide("exp", spec, observed, NASExperimentStatus(), 1, NOW)
    assert not any(t.promoted for t in step.launch)  # 1 of 1 at the rung: floor(1/3) = 0 go on


def test_at_the_end_the_leader_of_the_highest_rung_is_trained_to_the_full_budget() -> None:
    spec = asha_spec(max_trials=3)
    observed = [
        trial(spec, 0, TrialPhase.PAUSED, [0.5]),
        trial(spec, 1, TrialPhase.PAUSED, [0.8, 0.85, 0.9]),  # alone at rung 3: ASHA would wait
        trial(spec, 2, TrialPhase.PAUSED, [0.6]),
    ]
    step = decide("exp", spec, observed, NASExperimentStatus(), 1, NOW)
    assert [(t.name, t.stop_at, t.promoted) for t in step.launch] == [("exp-1", None, True)]
    assert not step.finished


def test_an_exhausted_search_space_also_sends_the_leader_to_the_full_budget() -> None:
    one_point = {
        "layers": {"count": {"values": [1]}, "units": {"values": [16]}, "activations": ["relu"]},
        "hyperparameters": {
            "learningRate": {"values": [0.01]},
            "optimizers": ["adam"],
            "batchSize": {"values": [64]},
        },
    }
    spec = asha_spec().model_copy(
        update={
            "search_space": asha_spec().search_space.model_validate(one_point),
            "strategy": asha_spec().strategy.model_copy(update={"name": "grid"}),
        }
    )
    paused = [trial(spec, 0, TrialPhase.PAUSED, [0.5, 0.6, 0.7])]  # alone at rung 3; grid has no more
    step = decide("exp", spec, paused, NASExperimentStatus(), 1, NOW)
    assert [(t.name, t.stop_at, t.promoted) for t in step.launch] == [("exp-0", None, True)]
    assert not step.finished


def test_the_experiment_ends_with_unpromoted_trials_stopped_and_the_full_budget_trial_best() -> None:
    spec = asha_spec(max_trials=3)
    observed = [
        trial(spec, 0, TrialPhase.PAUSED, [0.5]),
        trial(spec, 1, TrialPhase.SUCCEEDED, [0.8, 0.85, 0.9, 0.9, 0.91, 0.92, 0.92, 0.93, 0.93]),
        trial(spec, 2, TrialPhase.PAUSED, [0.6]),
    ]
    step = decide("exp", spec, observed, NASExperimentStatus(), 1, NOW)
    assert step.finished and step.launch == []
    assert step.status.best is not None and step.status.best.trial == "exp-1"
    assert {s.name for s in step.stop} == {"exp-0", "exp-2"}
    assert "paused after epoch 1" in step.stop[0].reason
    counts = step.status.trials
    assert (counts.paused, counts.stopped, counts.succeeded, step.status.progress) == (0, 2, 1, "3/3")


def test_hyperband_spreads_first_rungs_over_brackets() -> None:
    step = decide("exp", asha_spec("hyperband", parallel=3), [], NASExperimentStatus(), 1, NOW)
    assert [t.stop_at for t in step.launch] == [1, 3, None]  # brackets start at 1, 3 and 9 (= all)


def test_a_relaunched_trial_goes_to_the_rung_after_its_recorded_epochs() -> None:
    spec = asha_spec()
    interrupted = trial(spec, 0, TrialPhase.PENDING, [0.5, 0.6])
    interrupted = TrialRecord(**{**interrupted.__dict__, "launched": False})
    step = decide("exp", spec, [interrupted], NASExperimentStatus(), 1, NOW)
    assert (step.launch[0].name, step.launch[0].new, step.launch[0].stop_at) == ("exp-0", False, 3)


def test_asha_decides_the_epochs_so_they_are_not_searched() -> None:
    searched = {
        "searchSpace": {"hyperparameters": {"epochs": {"values": [5, 10]}}},
        "earlyStopping": {"rule": "asha"},
    }
    with pytest.raises(SpecError, match=r"searchSpace.hyperparameters.epochs: must be left out"):
        parse_model(NASExperimentSpec, searched, prefix="spec")


def test_rungs_must_fit_the_epochs() -> None:
    bad = {"training": {"dataset": "digits", "epochs": 3}, "earlyStopping": {"rule": "asha", "minEpochs": 3}}
    with pytest.raises(SpecError, match=r"earlyStopping.minEpochs: must be below training.epochs"):
        parse_model(NASExperimentSpec, bad, prefix="spec")


def test_samplers_learn_from_trials_paused_or_stopped_at_a_rung() -> None:
    """TPE + ASHA: a trial that stopped at rung 1 still ranks its candidate (at its fidelity)."""
    from kubenas.strategies.searcher import SearcherStrategy

    spec = asha_spec().model_copy(
        update={"strategy": asha_spec().strategy.model_copy(update={"name": "tpe"})}
    )
    strategy = make_strategy(spec)
    assert isinstance(strategy, SearcherStrategy)
    observed = [
        trial(spec, 0, TrialPhase.PAUSED, [0.5]),
        trial(spec, 1, TrialPhase.STOPPED, [0.4]),
        trial(spec, 2, TrialPhase.RUNNING, []),
        trial(spec, 3, TrialPhase.FAILED, []),
    ]
    seen = strategy.observations(observed)
    assert [(o.score, o.pending) for o in seen] == [(0.5, False), (0.4, False), (None, True), (None, False)]
