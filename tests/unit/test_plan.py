"""The controller core: what decide() decides from the spec and the observed trials."""

from dataclasses import replace

from kubenas.api import ExperimentPhase, NASExperimentSpec, NASExperimentStatus, TrialPhase
from kubenas.engine.decide import decide, invalid_spec_status
from kubenas.engine.records import TrialRecord, trial_name
from kubenas.engine.reuse import warm_start
from kubenas.strategies import make_strategy

NOW = "2026-01-01T00:00:00Z"


def make_spec(**budget: int) -> NASExperimentSpec:
    return NASExperimentSpec.model_validate(
        {
            "budget": {"maxTrials": 4, "parallelTrials": 2, "maxFailedTrials": 1, **budget},
            "objective": {"metric": "accuracy", "target": 0.99},
        }
    )


def trials(spec: NASExperimentSpec, *outcomes: tuple[TrialPhase, float | None]) -> list[TrialRecord]:
    candidates = make_strategy(spec).ask([], len(outcomes))
    return [
        TrialRecord(trial_name("exp", i), i, i, c, phase, {"accuracy": v} if v is not None else {})
        for i, (c, (phase, v)) in enumerate(zip(candidates, outcomes, strict=True))
    ]


def test_first_pass_launches_parallel_trials_with_deterministic_names() -> None:
    step = decide("exp", make_spec(), [], NASExperimentStatus(), 1, NOW)
    assert [t.name for t in step.launch] == ["exp-0", "exp-1"]
    assert all(t.new for t in step.launch)
    assert step.status.phase is ExperimentPhase.RUNNING
    assert step.status.trials.created == 2
    assert step.status.observed_generation == 1
    running = next(c for c in step.status.conditions if c.type == "Running")
    assert (running.status, running.reason) == ("True", "TrialsRunning")


def test_same_observation_gives_the_same_plan() -> None:
    spec = make_spec()
    observed = trials(spec, (TrialPhase.SUCCEEDED, 0.9))
    a = decide("exp", spec, observed, NASExperimentStatus(), 1, NOW)
    b = decide("exp", spec, observed, NASExperimentStatus(), 1, NOW)
    assert a == b
    assert [t.name for t in a.launch] == ["exp-1", "exp-2"]
    assert a.launch[0].candidate == make_strategy(spec).ask(observed, 1)[0]


def test_no_launch_beyond_parallel_or_total_budget() -> None:
    spec = make_spec()
    running = trials(spec, (TrialPhase.RUNNING, None), (TrialPhase.PENDING, None))
    assert decide("exp", spec, running, NASExperimentStatus(), 1, NOW).launch == []
    three_done = trials(spec, *[(TrialPhase.SUCCEEDED, 0.5)] * 3, (TrialPhase.RUNNING, None))
    assert decide("exp", spec, three_done, NASExperimentStatus(), 1, NOW).launch == []


def test_recorded_but_unlaunched_trial_is_relaunched_not_recreated() -> None:
    spec = make_spec()
    observed = trials(spec, (TrialPhase.PENDING, None))
    observed[0] = TrialRecord(**{**observed[0].__dict__, "launched": False})
    step = decide("exp", spec, observed, NASExperimentStatus(), 1, NOW)
    assert [(t.name, t.new) for t in step.launch] == [("exp-0", False), ("exp-1", True)]


def test_succeeds_at_max_trials_with_the_best_trial() -> None:
    spec = make_spec()
    done = trials(spec, *[(TrialPhase.SUCCEEDED, v) for v in (0.8, 0.95, 0.95, 0.7)])
    step = decide("exp", spec, done, NASExperimentStatus(), 1, NOW)
    assert step.finished and step.status.phase is ExperimentPhase.SUCCEEDED
    assert step.launch == [] and step.stop == []
    assert step.status.best is not None
    assert (step.status.best.trial, step.status.best.objective_value) == ("exp-1", 0.95)  # earliest of equals
    assert step.status.best.candidate == done[1].candidate
    succeeded = next(c for c in step.status.conditions if c.type == "Succeeded")
    assert (succeeded.status, succeeded.reason) == ("True", "MaxTrialsReached")
    assert step.status.progress == "4/4"
    assert step.status.completion_time == NOW


def test_target_reached_stops_the_running_trials() -> None:
    spec = make_spec()
    observed = trials(spec, (TrialPhase.SUCCEEDED, 0.995), (TrialPhase.RUNNING, None))
    step = decide("exp", spec, observed, NASExperimentStatus(), 1, NOW)
    assert step.status.phase is ExperimentPhase.SUCCEEDED
    assert [t.name for t in step.stop] == ["exp-1"] and step.launch == []
    assert step.stop[0].reason == "experiment ended: TargetReached"
    assert step.status.conditions[-1].reason == "TargetReached"


def test_minimize_objective_picks_the_lowest() -> None:
    spec = NASExperimentSpec.model_validate({"objective": {"metric": "loss"}, "budget": {"maxTrials": 2}})
    observed = trials(spec, (TrialPhase.SUCCEEDED, None), (TrialPhase.SUCCEEDED, None))
    observed = [
        TrialRecord(**{**t.__dict__, "metrics": {"loss": v}})
        for t, v in zip(observed, (0.3, 0.2), strict=True)
    ]
    step = decide("exp", spec, observed, NASExperimentStatus(), 1, NOW)
    assert step.status.best is not None and step.status.best.trial == "exp-1"


def test_too_many_failures_fail_the_experiment() -> None:
    spec = make_spec()
    observed = trials(spec, (TrialPhase.FAILED, None), (TrialPhase.FAILED, None), (TrialPhase.RUNNING, None))
    step = decide("exp", spec, observed, NASExperimentStatus(), 1, NOW)
    assert step.status.phase is ExperimentPhase.FAILED
    assert step.status.conditions[-1].reason == "TooManyFailedTrials"
    assert [t.name for t in step.stop] == ["exp-2"]


def test_no_trial_succeeded_is_a_failure() -> None:
    spec = make_spec(maxTrials=2, maxFailedTrials=2)
    observed = trials(spec, (TrialPhase.FAILED, None), (TrialPhase.FAILED, None))
    step = decide("exp", spec, observed, NASExperimentStatus(), 1, NOW)
    assert step.status.phase is ExperimentPhase.FAILED
    assert step.status.conditions[-1].reason == "NoTrialSucceeded"


def test_condition_transition_time_kept_while_status_unchanged() -> None:
    spec = make_spec()
    first = decide("exp", spec, [], NASExperimentStatus(), 1, NOW).status
    second = decide(
        "exp", spec, trials(spec, (TrialPhase.RUNNING, None)), first, 1, "2026-01-01T00:05:00Z"
    ).status
    assert second.conditions[0].last_transition_time == NOW
    assert second.start_time == NOW


def test_invalid_spec_status_names_the_problem() -> None:
    status = invalid_spec_status(["spec.budget.maxTrials: must be >= 1"], NASExperimentStatus(), 3, NOW)
    assert status.phase is ExperimentPhase.FAILED
    failed = next(c for c in status.conditions if c.type == "Failed")
    assert (failed.reason, failed.message, failed.observed_generation) == (
        "InvalidSpec",
        "spec.budget.maxTrials: must be >= 1",
        3,
    )


ONE_POINT = {
    "layers": {"count": {"values": [1]}, "units": {"values": [8]}, "activations": ["relu"]},
    "hyperparameters": {
        "learningRate": {"values": [0.01]},
        "optimizers": ["adam"],
        "batchSize": {"values": [32]},
    },
}


def test_an_evaluated_candidate_is_reused_not_trained_again() -> None:
    spec = NASExperimentSpec.model_validate(
        {"searchSpace": ONE_POINT, "budget": {"maxTrials": 4, "parallelTrials": 2}}
    )
    observed = trials(spec, (TrialPhase.SUCCEEDED, 0.9), (TrialPhase.RUNNING, None))
    observed[0] = TrialRecord(**{**observed[0].__dict__, "test_metrics": {"accuracy": 0.88}})
    step = decide("exp", spec, observed, NASExperimentStatus(), 1, NOW)
    assert step.launch == []
    assert [(r.name, r.index) for r in step.reuse] == [("exp-2", 2)]
    reused = step.reuse[0].status
    assert reused.phase is TrialPhase.SUCCEEDED and reused.objective_value == 0.9
    assert reused.test_metrics == {"accuracy": 0.88}
    assert step.status.best is not None and step.status.best.test_metrics == {"accuracy": 0.88}
    assert reused.message == "reused the result of exp-0 (same candidate)"
    assert step.status.trials.created == 3


def test_a_twin_of_a_running_trial_waits_for_its_result_instead_of_training_again() -> None:
    spec = NASExperimentSpec.model_validate(
        {"searchSpace": ONE_POINT, "budget": {"maxTrials": 4, "parallelTrials": 2}}
    )
    running = trials(spec, (TrialPhase.FAILED, None), (TrialPhase.RUNNING, None))
    step = decide("exp", spec, running, NASExperimentStatus(), 1, NOW)
    assert step.launch == [] and step.reuse == []
    assert [(w.name, w.twin) for w in step.wait] == [("exp-2", "exp-1")]
    waiting = [TrialRecord(w.name, w.index, w.seed, w.candidate, launched=False) for w in step.wait]
    step = decide("exp", spec, [*running, *waiting], NASExperimentStatus(), 1, NOW)
    assert step.launch == []  # a waiting trial holds no parallel slot: the next twin waits too
    assert [(w.name, w.twin) for w in step.wait] == [("exp-3", "exp-1")]
    assert step.status.trials.created == 4
    waiting += [TrialRecord(w.name, w.index, w.seed, w.candidate, launched=False) for w in step.wait]

    twin_done = [running[0], replace(running[1], phase=TrialPhase.SUCCEEDED, metrics={"accuracy": 0.9})]
    step = decide("exp", spec, [*twin_done, *waiting], NASExperimentStatus(), 1, NOW)
    assert [(r.name, r.new, r.status.objective_value) for r in step.reuse] == [
        ("exp-2", False, 0.9),
        ("exp-3", False, 0.9),
    ]
    assert step.launch == [] and step.status.trials.created == 4

    twin_failed = [running[0], replace(running[1], phase=TrialPhase.FAILED)]
    step = decide("exp", spec, [*twin_failed, *waiting], NASExperimentStatus(), 1, NOW)
    assert [(t.name, t.new) for t in step.launch] == [("exp-2", False)]  # one trains, the other waits
    assert step.status.trials.created == 4


def test_failed_trials_are_not_reused_and_reuse_can_be_switched_off() -> None:
    spec = NASExperimentSpec.model_validate(
        {"searchSpace": ONE_POINT, "budget": {"maxTrials": 4, "parallelTrials": 2}}
    )
    failed = trials(spec, (TrialPhase.FAILED, None))
    assert [t.name for t in decide("exp", spec, failed, NASExperimentStatus(), 1, NOW).launch] == ["exp-1"]
    off = spec.model_copy(update={"strategy": spec.strategy.model_copy(update={"reuse_results": False})})
    done = trials(off, (TrialPhase.SUCCEEDED, 0.9), (TrialPhase.RUNNING, None))
    step = decide("exp", off, done, NASExperimentStatus(), 1, NOW)
    assert step.reuse == [] and step.wait == [] and [t.name for t in step.launch] == ["exp-2"]


def test_multi_objective_status_lists_the_pareto_front() -> None:
    spec = NASExperimentSpec.model_validate(
        {
            "strategy": {
                "name": "nsga2",
                "settings": {"objectives": [{"metric": "accuracy"}, {"metric": "loss"}]},
            },
            "budget": {"maxTrials": 4, "parallelTrials": 1},
        }
    )
    observed = trials(spec, *[(TrialPhase.SUCCEEDED, None)] * 3, (TrialPhase.FAILED, None))
    scores = [(0.9, 0.5), (0.8, 0.2), (0.7, 0.6)]  # exp-2 is dominated by exp-0 (worse on both)
    observed = [
        TrialRecord(**{**t.__dict__, "metrics": {"accuracy": a, "loss": loss}})
        for t, (a, loss) in zip(observed, scores, strict=False)
    ] + observed[3:]
    status = decide("exp", spec, observed, NASExperimentStatus(), 1, NOW).status
    assert status.pareto_front is not None and status.pareto_front_size == 2
    assert [m.trial for m in status.pareto_front] == ["exp-0", "exp-1"]
    assert status.pareto_front[1].metrics == {"accuracy": 0.8, "loss": 0.2}
    assert decide("exp", make_spec(), observed, NASExperimentStatus(), 1, NOW).status.pareto_front is None


def test_warm_start_trials_feed_the_strategy_but_not_the_budget() -> None:
    spec = NASExperimentSpec.model_validate(
        {
            "strategy": {
                "name": "evolution",
                "warmStartFrom": "old",
                "settings": {"populationSize": 2, "sampleSize": 2},
            },
            "budget": {"maxTrials": 3, "parallelTrials": 2},
        }
    )
    source = trials(spec, (TrialPhase.SUCCEEDED, 0.9), (TrialPhase.SUCCEEDED, 0.5), (TrialPhase.FAILED, None))
    warm = decide("exp", spec, [], NASExperimentStatus(), 1, NOW, warm=source)
    cold = decide("exp", spec, [], NASExperimentStatus(), 1, NOW)
    assert [t.name for t in warm.launch] == ["exp-0", "exp-1"] and warm.status.trials.created == 2
    expected = make_strategy(spec).ask(warm_start("old", source), 2)
    assert [t.candidate for t in warm.launch] == expected
    assert [t.candidate for t in warm.launch] != [t.candidate for t in cold.launch]
    assert warm.reuse == []  # another experiment's results are not reused


def with_curve(trial: TrialRecord, phase: TrialPhase, accuracies: list[float]) -> TrialRecord:
    curve = tuple({"epoch": e + 1, "accuracy": a} for e, a in enumerate(accuracies))
    return TrialRecord(**{**trial.__dict__, "phase": phase, "epoch_metrics": curve})


def test_median_rule_stops_a_running_trial_that_falls_behind() -> None:
    spec = NASExperimentSpec.model_validate(
        {
            "budget": {"maxTrials": 6, "parallelTrials": 3},
            "earlyStopping": {"rule": "median", "graceEpochs": 1, "minTrials": 2},
        }
    )
    base = trials(spec, *[(TrialPhase.RUNNING, None)] * 4)
    observed = [
        with_curve(base[0], TrialPhase.SUCCEEDED, [0.80, 0.90, 0.92]),
        with_curve(base[1], TrialPhase.SUCCEEDED, [0.70, 0.85, 0.90]),
        with_curve(base[2], TrialPhase.RUNNING, [0.30, 0.40]),  # best 0.40 < median of means (0.85, 0.775)
        with_curve(base[3], TrialPhase.RUNNING, [0.75, 0.88]),  # keeps up
    ]
    step = decide("exp", spec, observed, NASExperimentStatus(), 1, NOW)
    assert [s.name for s in step.stop] == ["exp-2"]
    assert step.stop[0].reason.startswith("early stopping: best 0.4 below the median")
    for rule in ("none", "asha", "hyperband"):  # only the median rule stops a running trial
        rules = {"rule": rule, "min_epochs": 1}
        other = spec.model_copy(update={"early_stopping": spec.early_stopping.model_copy(update=rules)})
        assert decide("exp", other, observed, NASExperimentStatus(), 1, NOW).stop == []


def test_median_rule_waits_for_grace_epochs_and_enough_peers() -> None:
    spec = NASExperimentSpec.model_validate(
        {
            "budget": {"maxTrials": 6, "parallelTrials": 3},
            "earlyStopping": {"rule": "median", "graceEpochs": 2, "minTrials": 2},
        }
    )
    base = trials(spec, *[(TrialPhase.RUNNING, None)] * 3)
    observed = [
        with_curve(base[0], TrialPhase.SUCCEEDED, [0.80, 0.90, 0.92]),
        with_curve(base[1], TrialPhase.SUCCEEDED, [0.70, 0.85, 0.90]),
        with_curve(base[2], TrialPhase.RUNNING, [0.30, 0.40]),  # still within its grace epochs
    ]
    assert decide("exp", spec, observed, NASExperimentStatus(), 1, NOW).stop == []
    lonely = [observed[0], observed[2]]  # one peer is fewer than minTrials
    spec1 = spec.model_copy(
        update={"early_stopping": spec.early_stopping.model_copy(update={"grace_epochs": 1})}
    )
    assert decide("exp", spec1, lonely, NASExperimentStatus(), 1, NOW).stop == []
