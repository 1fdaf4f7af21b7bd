"""MIHA: its schedule of trials, the fittest clone by validation loss per example, its clone mutation,
and the spec errors of a schedule that does not fit."""

import re
from dataclasses import dataclass, replace

import numpy as np
import pytest
from kubenas.api import ExperimentPhase, NASExperimentSpec, NASExperimentStatus, SearchSpace, TrialPhase
from kubenas.api.errors import SpecError
from kubenas.engine.decide import decide
from kubenas.engine.records import TrialRecord
from kubenas.space.encoding import CandidateCodec
from kubenas.strategies import make_strategy
from kubenas.strategies.base import Proposal
from kubenas.strategies.miha import CLONE_MUTABLE, MIHA, clone_mutation


def test_a_clone_changes_one_trainable_choice_and_keeps_the_shape() -> None:
    space = SearchSpace.model_validate(
        {
            "layers": {
                "count": {"min": 1, "max": 4},
                "units": {"values": [8, 16]},
                "activations": ["relu", "tanh"],
            },
            "hyperparameters": {"optimizers": ["adam", "sgd"], "batchSize": {"values": [16, 32]}},
        }
    )
    codec = CandidateCodec(space)
    rng = np.random.default_rng(1)
    changed = set()
    for _ in range(200):
        point = codec.space.sample(rng)
        clone = clone_mutation(codec.space, point, rng)
        diff = [k for k in point if clone[k] != point[k]]
        assert len(diff) == 1 and clone.keys() == point.keys()
        changed.add(diff[0].rsplit(".", 1)[-1])
    assert changed == {"optimizer", "activation", "batchSize", "learningRate"}


# The wired strategy: one lineage of trials continuing each other's checkpoints.

SPACE = {
    "layers": {"count": {"min": 1, "max": 3}, "units": {"values": [16, 32]}, "activations": ["relu", "tanh"]},
    "hyperparameters": {"optimizers": ["adam", "sgd"], "batchSize": {"values": [16, 32, 64]}},
}
SMALL = {"runUpEpochs": 2, "cycles": 2, "populationSize": 3, "cycleEpochs": 1, "continueEpochs": 2}


def miha_spec(
    settings: dict[str, object] | None = None,
    epochs: int = 10,
    max_trials: int = 20,
    seed: int = 4,
    **extra: object,
) -> NASExperimentSpec:
    return NASExperimentSpec.model_validate(
        {
            "searchSpace": SPACE,
            "strategy": {"name": "miha", "seed": seed, "settings": SMALL if settings is None else settings},
            "budget": {"maxTrials": max_trials, "parallelTrials": 3},
            "training": {"epochs": epochs},
            **extra,
        }
    )


def record(index: int, proposal: Proposal) -> TrialRecord:
    return TrialRecord(
        f"x-{index}",
        index,
        index,
        proposal.candidate,
        start_from=proposal.start_from,
        stop_at_epoch=proposal.stop_at_epoch,
        note=proposal.note,
    )


def settle(trial: TrialRecord, loss: float | None, epochs: int = 10) -> TrialRecord:
    """The trial as its trainer leaves it: paused at its stopAtEpoch (or succeeded at the end), with
    its last epoch's validation loss; or failed when loss is None."""
    if loss is None:
        return replace(trial, phase=TrialPhase.FAILED)
    done = trial.stop_at_epoch is None or trial.stop_at_epoch >= epochs
    phase = TrialPhase.SUCCEEDED if done else TrialPhase.PAUSED
    return replace(
        trial, phase=phase, metrics={"loss": loss, "accuracy": 1 - loss}, epochs=trial.stop_at_epoch
    )


@dataclass(frozen=True)
class Call:
    history: list[TrialRecord]
    count: int
    proposals: list[Proposal]
    done: bool


def drive(spec: NASExperimentSpec, losses: dict[int, float | None]) -> tuple[list[TrialRecord], list[Call]]:
    """Propose into the free room (3 at a time), then settle every pending trial; until done."""
    strategy = make_strategy(spec)
    history: list[TrialRecord] = []
    calls: list[Call] = []
    for _ in range(100):
        proposals, done = strategy.propose(list(history), 3)
        calls.append(Call(list(history), 3, proposals, done))
        history += [record(len(history) + i, p) for i, p in enumerate(proposals)]
        if done:
            return history, calls
        assert proposals, "waiting with nothing running"
        history = [
            settle(t, losses.get(t.index, 0.5)) if t.phase is TrialPhase.PENDING else t for t in history
        ]
    raise AssertionError("never done")


# Clone validation losses per trial index: cycle 1's fittest is x-2, cycle 2's x-7 (x-6 fails).
LOSSES: dict[int, float | None] = {1: 0.5, 2: 0.3, 3: 0.4, 5: 0.2, 6: None, 7: 0.1}


def test_the_schedule_run_up_cycles_of_clones_the_fittest_continued_and_a_final_segment() -> None:
    spec = miha_spec()
    history, calls = drive(spec, LOSSES)
    strategy = make_strategy(spec)
    assert isinstance(strategy, MIHA) and strategy.trials == len(history) == 10
    plan = [(t.index, strategy.slot(t.index).role, t.start_from, t.stop_at_epoch) for t in history]
    assert plan == [
        (0, "run-up", None, 2),
        (1, "clone", "x-0", 3),
        (2, "clone", "x-0", 3),
        (3, "clone", "x-0", 3),
        (4, "continue", "x-2", 5),  # the fittest clone of cycle 1 goes on for k=2 epochs
        (5, "clone", "x-4", 6),
        (6, "clone", "x-4", 6),
        (7, "clone", "x-4", 6),
        (8, "continue", "x-7", 8),
        (9, "final", "x-8", 10),  # the rest of training.epochs: 10 - 2 - 2 x (1 + 2)
    ]
    codec, by_name = CandidateCodec(spec.search_space), {t.name: t for t in history}
    for trial in history[1:]:
        assert trial.start_from is not None
        parent, child = codec.encode(by_name[trial.start_from].candidate), codec.encode(trial.candidate)
        diff = [k for k in child if child[k] != parent[k]]
        if strategy.slot(trial.index).role == "clone":
            assert len(diff) == 1 and diff[0].endswith(CLONE_MUTABLE)
        else:  # a continuation goes on with the same candidate
            assert diff == []
    assert [len(c.proposals) for c in calls] == [1, 3, 1, 3, 1, 1]  # it waits for every dependency
    assert calls[-1].done and not any(c.done for c in calls[:-1])
    notes = [t.note for t in history]
    assert notes[0].startswith("MIHA run-up: epochs 1-2 of 10; then 2 cycle(s) of 3 mutated clones")
    assert re.fullmatch(r"MIHA cycle 2/2, clone 3/3 of x-4: \S+ \S+ -> \S+; epoch 6", notes[7])
    assert notes[4] == (
        "MIHA cycle 1/2: continue the fittest clone x-2 to epoch 5 "
        "(validation loss 0.3 per example; others: x-1 0.5, x-3 0.4)"
    )
    assert notes[8].endswith("(validation loss 0.1 per example; others: x-5 0.2, x-6 failed)")
    assert notes[9] == "MIHA final: continue x-8 from epoch 8 to epoch 10, the end of training"


def test_clones_of_a_cycle_differ_while_the_space_allows() -> None:
    spec = miha_spec({**SMALL, "populationSize": 6})
    history, _ = drive(spec, {})
    clones = [t.candidate.key() for t in history[1:7]]
    assert len(set(clones)) == 6


def test_it_waits_for_the_trial_it_continues() -> None:
    strategy = make_strategy(miha_spec())
    (run_up,), done = strategy.propose([], 3)
    assert not done and run_up.stop_at_epoch == 2 and run_up.start_from is None
    history = [record(0, run_up)]
    for phase in (TrialPhase.PENDING, TrialPhase.RUNNING):
        assert strategy.propose([replace(history[0], phase=phase)], 3) == ([], False)
    history = [settle(history[0], 0.9)]
    clones, done = strategy.propose(history, 5)
    assert len(clones) == 3 and not done  # the continuation waits for the clones
    assert strategy.propose(history, 2)[0] == clones[:2]
    history += [record(1 + i, c) for i, c in enumerate(clones)]
    history[1:3] = [settle(history[1], 0.4), replace(history[2], phase=TrialPhase.RUNNING)]
    assert strategy.propose(history, 3) == ([], False)
    history[2] = settle(history[2], 0.2)
    history[3] = settle(history[3], 0.3)
    (cont,), done = strategy.propose(history, 3)
    assert cont.start_from == "x-2" and cont.candidate == history[2].candidate and not done


def test_failed_clones_are_not_ranked_and_without_any_the_current_trial_goes_on() -> None:
    nan, none = float("nan"), None
    history, _ = drive(miha_spec(), {1: none, 2: nan, 3: 0.7, 5: none, 6: none, 7: none})
    assert history[4].start_from == "x-3"  # x-1 failed and x-2's loss is NaN
    assert history[8].start_from == "x-4" and history[8].candidate == history[4].candidate
    assert history[8].stop_at_epoch == 8
    assert history[8].note == (
        "MIHA cycle 2/2: no clone has a validation loss (x-5 failed, x-6 failed, x-7 failed); "
        "continue x-4 unchanged to epoch 8"
    )


@pytest.mark.parametrize("lost", [0, 4])
@pytest.mark.parametrize("phase", [TrialPhase.FAILED, TrialPhase.STOPPED])
def test_the_lineage_ends_when_the_run_up_or_a_continuation_is_lost(lost: int, phase: TrialPhase) -> None:
    spec = miha_spec()
    history, _ = drive(spec, {})
    history = [replace(t, phase=phase) if t.index == lost else t for t in history[: lost + 1]]
    assert make_strategy(spec).propose(history, 3) == ([], True)


def test_a_restarted_strategy_proposes_the_same_trials() -> None:
    spec = miha_spec()
    history, calls = drive(spec, LOSSES)
    for call in calls:
        assert make_strategy(spec).propose(call.history, call.count) == (call.proposals, call.done)
        assert make_strategy(spec).ask(call.history, call.count) == [p.candidate for p in call.proposals]
    assert [t.candidate for t in drive(miha_spec(seed=5), LOSSES)[0]] != [t.candidate for t in history]


def test_a_warm_start_gives_the_run_up_the_best_warm_candidate_in_the_space() -> None:
    spec = miha_spec()
    codec = CandidateCodec(spec.search_space)
    rng = np.random.default_rng(0)
    candidates = [codec.decode(codec.space.sample(rng)) for _ in range(3)]
    old = [  # a warm start's records: another experiment's succeeded trials, indices -3 .. -1
        TrialRecord(f"old/{i}", i - 3, i, c, TrialPhase.SUCCEEDED, {"accuracy": a})
        for i, (c, a) in enumerate(zip(candidates, [0.5, 0.9, 0.7], strict=True))
    ]
    (run_up,), _ = make_strategy(spec).propose(old, 3)
    assert run_up.candidate == candidates[1] and run_up.start_from is None
    hp = candidates[1].hyperparameters.model_copy(update={"batch_size": 8})  # not in this space
    old[1] = replace(old[1], candidate=candidates[1].model_copy(update={"hyperparameters": hp}))
    (run_up,), _ = make_strategy(spec).propose(old, 3)
    assert run_up.candidate == candidates[2]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            miha_spec(epochs=8),
            r"^spec.training.epochs: strategy miha needs more than runUpEpochs \+ cycles x "
            r"\(cycleEpochs \+ continueEpochs\) = 8 epochs \(training.epochs=8\)$",
        ),
        (
            miha_spec(max_trials=9),
            r"^spec.budget.maxTrials: strategy miha needs 1 \+ cycles x \(populationSize \+ 1\) \+ 1 = 10 "
            r"trials \(maxTrials=9\)$",
        ),
        (
            miha_spec(searchSpace={**SPACE, "hyperparameters": {"epochs": {"values": [5, 10]}}}),
            r"^spec.searchSpace.hyperparameters.epochs: strategy miha schedules the epochs itself",
        ),
        (
            miha_spec(earlyStopping={"rule": "asha"}),
            r"^spec.earlyStopping.rule: strategy miha schedules its trials' epochs itself; "
            r"earlyStopping.rule must be none \(rule=asha\)$",
        ),
        (
            miha_spec({"populationSize": 1}),
            r"spec.strategy.settings.populationSize: .*greater than or equal to 2",
        ),
    ],
)
def test_a_schedule_that_does_not_fit_is_a_spec_error(spec: NASExperimentSpec, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        make_strategy(spec)


def test_through_the_controller_the_final_trial_is_the_best() -> None:
    """decide() drives the lineage: paused trials wait, the final one succeeds, the schedule completes."""
    spec = miha_spec(max_trials=12)
    trials: list[TrialRecord] = []
    status = NASExperimentStatus()
    for _ in range(50):
        step = decide("x", spec, trials, status, 1, "2026-01-01T00:00:00Z")
        status = step.status
        if step.finished:
            break
        assert len(step.launch) <= 3 and all(item.new for item in step.launch)
        trials += [
            TrialRecord(
                t.name, t.index, t.seed, t.candidate, start_from=t.start_from, stop_at_epoch=t.stop_at
            )
            for t in step.launch
        ]
        trials = [settle(t, LOSSES.get(t.index, 0.5)) if t.phase is TrialPhase.PENDING else t for t in trials]
    assert status.phase is ExperimentPhase.SUCCEEDED
    assert status.conditions[-1].reason == "ScheduleCompleted"
    assert status.best is not None and status.best.trial == "x-9" and len(trials) == 10
    assert sorted(stop.name for stop in step.stop) == sorted(
        t.name for t in trials if t.phase is TrialPhase.PAUSED
    )
