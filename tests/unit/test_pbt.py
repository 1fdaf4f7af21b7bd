"""PBT: exploit and explore (the bottom quantile copies the top one, hyperparameters perturbed, logged),
and the pbt strategy's synchronous generations through the controller core."""

import math
import re
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from kubenas.api import (
    ExperimentPhase,
    NASExperimentSpec,
    NASExperimentStatus,
    NASTrialStatus,
    SearchSpace,
    TrialPhase,
)
from kubenas.api.errors import SpecError, parse_model
from kubenas.engine.decide import decide
from kubenas.engine.records import TrialRecord, record
from kubenas.space.encoding import COUNT, CandidateCodec
from kubenas.strategies import make_strategy
from kubenas.strategies.pbt import Member, PBTSettings, exploit_and_explore, explore
from kubenas_trainer.spec import Candidate

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


def test_members_without_a_score_are_always_replaced() -> None:
    members = [*population(4), Member("t-failed", SPACE.sample(np.random.default_rng(9)), None)]
    rounds = exploit_and_explore(SPACE, members, seed=1, step=1, settings=PBTSettings(quantile=0.25))
    assert {r.target for r in rounds} == {"t-0", "t-failed"}
    assert all(r.source == "t-3" for r in rounds)
    assert next(r for r in rounds if r.target == "t-failed").log[0].startswith("t-failed (no score) <- t-3")
    # nobody to copy: nothing happens (the strategy then draws afresh)
    assert exploit_and_explore(SPACE, [replace(m, score=None) for m in members], 1, 1, PBTSettings()) == []


# --- the pbt strategy -------------------------------------------------------------------------------------

PBT_SPACE = {
    "layers": {
        "count": {"min": 1, "max": 2},
        "units": {"values": [16, 32, 64]},
        "activations": ["relu", "tanh"],
    },
    "hyperparameters": {
        "learningRate": {"min": 1e-4, "max": 1e-1, "log": True},
        "optimizers": ["adam", "sgd"],
        "batchSize": {"values": [16, 32, 64]},
    },
}
NOW = "2026-01-01T00:00:00Z"


def pbt_spec(
    population_size: int = 4,
    interval: int = 2,
    epochs: int = 5,
    max_trials: int = 12,
    parallel: int = 4,
    objective: dict[str, Any] | None = None,
    seed: int = 11,
    **extra: Any,
) -> NASExperimentSpec:
    return NASExperimentSpec.model_validate(
        {
            "searchSpace": PBT_SPACE,
            "objective": objective or {"metric": "accuracy"},
            "strategy": {
                "name": "pbt",
                "seed": seed,
                "settings": {"populationSize": population_size, "interval": interval},
            },
            "budget": {"maxTrials": max_trials, "parallelTrials": parallel, "maxFailedTrials": 3},
            "training": {"epochs": epochs},
            **extra,
        }
    )


def gain(candidate: Candidate) -> float:
    """Accuracy gained per epoch: best at learning rate 0.01 (a smooth landscape PBT can climb)."""
    return 0.1 - 0.03 * abs(math.log10(candidate.hyperparameters.learning_rate) + 2)


def finish(spec: NASExperimentSpec, trials: list[TrialRecord], trial: TrialRecord) -> TrialRecord:
    """What a trainer would report: the parent's accuracy plus this segment's gain; paused before the end."""
    parent = next((t for t in trials if t.name == trial.start_from), None)
    start = parent.epochs or 0 if parent else 0
    stop = min(trial.stop_at_epoch or spec.training.epochs, spec.training.epochs)
    accuracy = (parent.metrics["accuracy"] if parent else 0.0) + (stop - start) * gain(trial.candidate)
    phase = TrialPhase.SUCCEEDED if stop >= spec.training.epochs else TrialPhase.PAUSED
    return replace(trial, phase=phase, metrics={"accuracy": accuracy}, epochs=stop)


def drive(
    spec: NASExperimentSpec, fail: frozenset[int] = frozenset()
) -> tuple[list[TrialRecord], NASExperimentStatus, list[str]]:
    """decide() to the end with a simulated trainer; each pass the oldest running trial finishes (or
    fails, for the indices in `fail`). Returns the trials, the final status, and the stopped trials."""
    trials: list[TrialRecord] = []
    status = NASExperimentStatus()
    size = spec.strategy.settings["populationSize"]
    for _ in range(200):
        step = decide("x", spec, trials, status, 1, NOW)
        status = step.status
        for launch in step.launch:
            assert launch.new
            # never into the next generation before the previous one is complete
            previous = [t for t in trials if t.index // size == launch.index // size - 1]
            assert all(t.phase is not TrialPhase.RUNNING for t in previous)
            trials.append(record(launch.spec, NASTrialStatus(phase=TrialPhase.RUNNING), launch.name))
        if step.finished:
            return trials, status, [s.name for s in step.stop]
        assert not step.stop
        running = [t for t in trials if t.phase is TrialPhase.RUNNING]
        oldest = running[0]
        if oldest.index in fail:
            trials[oldest.index] = replace(oldest, phase=TrialPhase.FAILED, message="boom")
        else:
            trials[oldest.index] = finish(spec, trials, oldest)
    raise AssertionError("the experiment did not end")


def architecture(candidate: Candidate) -> object:
    return candidate.architecture.model_dump()


def test_generation_zero_draws_the_population_and_pauses_it_after_the_interval() -> None:
    strategy = make_strategy(pbt_spec())
    proposals, done = strategy.propose([], 10)
    assert len(proposals) == 4 and not done  # one generation, never more
    assert all(p.start_from is None and p.stop_at_epoch == 2 for p in proposals)
    assert [p.note for p in proposals] == [f"PBT generation 0, member {m}: a fresh draw" for m in range(4)]
    assert len({p.candidate.key() for p in proposals}) == 4
    assert strategy.propose([], 2) == (proposals[:2], False)
    assert strategy.ask([], 3) == [p.candidate for p in proposals[:3]]
    assert strategy.propose([], 0) == ([], False)


def test_a_generation_waits_until_the_previous_one_is_complete() -> None:
    spec = pbt_spec(parallel=3)
    strategy = make_strategy(spec)
    first, _ = strategy.propose([], 3)
    history = [
        TrialRecord(f"x-{i}", i, i, p.candidate, TrialPhase.PAUSED, {"accuracy": 0.5}, epochs=2)
        for i, p in enumerate(first)
    ]
    rest, done = strategy.propose(history, 3)  # the last member of generation 0, nothing of generation 1
    assert len(rest) == 1 and rest[0].note.startswith("PBT generation 0, member 3") and not done
    history.append(TrialRecord("x-3", 3, 3, rest[0].candidate, TrialPhase.RUNNING))
    assert strategy.propose(history, 3) == ([], False)  # wait for x-3
    history[3] = replace(history[3], phase=TrialPhase.PAUSED, metrics={"accuracy": 0.7}, epochs=2)
    second, done = strategy.propose(history, 3)
    assert len(second) == 3 and not done
    assert all(p.note.startswith(f"PBT generation 1, member {m}:") for m, p in enumerate(second))
    assert all(p.stop_at_epoch == 4 for p in second)
    # the same trials however the generation is cut into calls, and from a restarted strategy
    whole, _ = make_strategy(spec).propose(history, 4)
    assert whole[:3] == second
    pending = [TrialRecord(f"x-{4 + i}", 4 + i, 0, p.candidate) for i, p in enumerate(second)]
    assert make_strategy(spec).propose([*history, *pending], 3) == (whole[3:], False)


def test_a_simulated_run_exploits_the_top_members_and_explores_their_hyperparameters() -> None:
    spec = pbt_spec(population_size=4, interval=2, epochs=5, max_trials=12)
    trials, status, stopped = drive(spec)
    assert len(trials) == 12 and status.phase is ExperimentPhase.SUCCEEDED
    assert status.conditions[-1].reason == "MaxTrialsReached"
    by_name = {t.name: t for t in trials}
    # the last generation trains to the end (epoch 5); the earlier ones paused and are stopped at the end
    assert [t.stop_at_epoch for t in trials] == [2] * 4 + [4] * 4 + [5] * 4
    assert [t.phase for t in trials[8:]] == [TrialPhase.SUCCEEDED] * 4
    assert sorted(stopped) == sorted(t.name for t in trials[:8])
    assert status.best is not None and status.best.trial in {t.name for t in trials[8:]}
    exploits = 0
    for trial in trials[4:]:
        generation, member = divmod(trial.index, 4)
        own = trials[trial.index - 4]  # the member's previous trial
        parent = by_name[trial.start_from or ""]
        assert parent.index // 4 == generation - 1
        head, *changes = trial.note.splitlines()
        assert head.startswith(f"PBT generation {generation}, member {member}: ")
        if parent is own:
            assert trial.candidate == own.candidate
            assert head.endswith(f"continues {own.name} (accuracy {own.metrics['accuracy']:.4g})")
            assert not changes
            continue
        exploits += 1
        # the worst of the previous generation copies the best one
        previous = sorted(trials[(generation - 1) * 4 : generation * 4], key=lambda t: t.metrics["accuracy"])
        assert own is previous[0] and parent is previous[-1]
        assert f"{own.name} (accuracy {own.metrics['accuracy']:.4g}) is replaced by a copy of " in head
        assert f"{parent.name} (accuracy {parent.metrics['accuracy']:.4g})" in head
        # only hyperparameters change: the copied weights keep their shapes
        assert architecture(trial.candidate) == architecture(parent.candidate)
        old, new = parent.candidate.hyperparameters, trial.candidate.hyperparameters
        changed = {
            k for k, v in new.model_dump(by_alias=True).items() if v != old.model_dump(by_alias=True)[k]
        }
        assert {line.split(":")[0] for line in changes} == {f"hyperparameters.{k}" for k in changed}
        assert changed and all(f"{k}:" in trial.note for k in changed)
    assert exploits == 2  # one per later generation (quantile 0.25 of 4)


def test_the_schedule_completes_before_max_trials() -> None:
    trials, status, _ = drive(pbt_spec(population_size=2, interval=3, epochs=5, max_trials=7, parallel=2))
    assert len(trials) == 4 and status.phase is ExperimentPhase.SUCCEEDED
    assert status.conditions[-1].reason == "ScheduleCompleted"


def test_failed_members_are_replaced_and_a_minimised_objective_ranks_low_first() -> None:
    spec = pbt_spec(objective={"metric": "loss"})
    strategy = make_strategy(spec)
    first, _ = strategy.propose([], 4)
    losses = [0.4, None, 0.2, 0.3]
    history = [
        TrialRecord(
            f"x-{i}",
            i,
            i,
            p.candidate,
            TrialPhase.FAILED if loss is None else TrialPhase.PAUSED,
            {} if loss is None else {"loss": loss},
            epochs=2,
        )
        for i, (p, loss) in enumerate(zip(first, losses, strict=True))
    ]
    second, _ = strategy.propose(history, 4)
    assert [p.start_from for p in second] == ["x-2", "x-2", "x-2", "x-3"]  # x-0 worst, x-1 failed
    assert (
        second[0]
        .note.splitlines()[0]
        .endswith("x-0 (loss 0.4) is replaced by a copy of x-2 (loss 0.2), starting from its checkpoint")
    )
    assert "x-1 (Failed, no score) is replaced by a copy of x-2" in second[1].note
    assert second[2].note.endswith("continues x-2 (loss 0.2)")
    # nobody with a score: fresh draws, trained from scratch to the generation's end
    failed = [replace(t, phase=TrialPhase.FAILED, metrics={}) for t in history]
    fresh, _ = strategy.propose(failed, 4)
    assert all(p.start_from is None and p.stop_at_epoch == 4 for p in fresh)
    assert all("no member has a score yet: a fresh draw from scratch" in p.note for p in fresh)


def test_a_failed_member_in_a_simulated_run_is_replaced() -> None:
    trials, status, _ = drive(pbt_spec(), fail=frozenset({1}))
    assert status.phase is ExperimentPhase.SUCCEEDED and len(trials) == 12
    assert trials[5].start_from != "x-1" and "x-1 (Failed, no score) is replaced" in trials[5].note


def test_the_same_seed_and_history_give_the_same_run() -> None:
    first, _, _ = drive(pbt_spec())
    again, _, _ = drive(pbt_spec())
    assert first == again
    # the same trials however many run at once (the generations wait for their last member)
    narrow, _, _ = drive(pbt_spec(parallel=3))
    assert narrow == first
    assert [t.candidate for t in drive(pbt_spec(seed=12))[0]] != [t.candidate for t in first]


def test_max_trials_must_hold_the_whole_schedule() -> None:
    with pytest.raises(
        SpecError,
        match=re.escape(
            "spec.budget.maxTrials: strategy pbt needs populationSize x generations = 4 x 3 = 12 trials "
            "(maxTrials=11), where generations = ceil(training.epochs / interval) = ceil(5 / 2)"
        ),
    ):
        make_strategy(pbt_spec(max_trials=11))


def test_pbt_refuses_an_early_stopping_rule_and_searched_epochs() -> None:
    with pytest.raises(
        SpecError, match=r"spec.earlyStopping.rule: strategy pbt schedules its trials' epochs"
    ):
        make_strategy(pbt_spec(earlyStopping={"rule": "asha"}))
    with pytest.raises(SpecError, match=r"spec.earlyStopping.rule: .*\(rule=median\)"):
        make_strategy(pbt_spec(earlyStopping={"rule": "median"}))
    space = {**PBT_SPACE, "hyperparameters": {**PBT_SPACE["hyperparameters"], "epochs": {"values": [5]}}}
    spec = pbt_spec().model_dump(by_alias=True)
    spec["searchSpace"] = space
    with pytest.raises(SpecError, match=r"spec.searchSpace.hyperparameters.epochs: strategy pbt schedules"):
        make_strategy(NASExperimentSpec.model_validate(spec))


def test_warm_start_trials_take_no_part() -> None:
    strategy = make_strategy(pbt_spec())
    proposals, _ = strategy.propose([], 4)
    warm = TrialRecord("old/x-0", -1, 0, proposals[3].candidate, TrialPhase.SUCCEEDED, {"accuracy": 1.0})
    assert strategy.propose([warm], 4) == (proposals, False)
