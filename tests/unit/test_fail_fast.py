"""Impossible candidates fail fast: refused before any Job when the data set's shape is known, and the
experiment ends at the first trial that no other candidate could have avoided."""

from __future__ import annotations

import pytest
from kubenas.api import ExperimentPhase, NASExperimentSpec, NASExperimentStatus, TrialPhase
from kubenas.api.errors import SpecError
from kubenas.engine.decide import decide
from kubenas.engine.feasibility import check_feasible
from kubenas.engine.records import TrialRecord
from kubenas.strategies import make_strategy

NOW = "2026-01-01T00:00:00Z"


def spec_of(dataset: str, types: list[str]) -> NASExperimentSpec:
    regression = dataset in ("diabetes", "sunspots", "co2")
    return NASExperimentSpec.model_validate(
        {
            "training": {"dataset": dataset},
            "searchSpace": {"layers": {"types": types}},
            "objective": {"metric": "mse" if regression else "accuracy"},
        }
    )


@pytest.mark.parametrize(
    ("dataset", "types", "impossible", "takes"),
    [
        ("iris", ["conv2d"], "conv2d", "dense"),
        ("wine", ["dense", "lstm"], "lstm", "dense"),
        ("diabetes", ["conv1d", "gru"], "conv1d, gru", "dense"),
        ("sunspots", ["conv2d"], "conv2d", "conv1d, dense, gru, lstm"),
    ],
)
def test_layers_the_data_set_cannot_take_are_refused_naming_the_field(
    dataset: str, types: list[str], impossible: str, takes: str
) -> None:
    with pytest.raises(SpecError) as error:
        check_feasible(spec_of(dataset, types))
    [problem] = error.value.problems
    assert problem.startswith(
        f"spec.searchSpace.layers.types: {impossible} cannot apply to data set {dataset!r}"
    )
    assert problem.endswith(f"; it takes: {takes}")


@pytest.mark.parametrize(
    ("dataset", "types"),
    [
        ("digits", ["conv2d", "dense", "lstm"]),  # 1x8x8 images take every family
        ("sunspots", ["conv1d", "gru", "dense"]),
        ("iris", ["dense"]),
        ("data/table.csv", ["conv2d"]),  # unknown until a trial loads it: the first trial will tell
    ],
)
def test_layers_the_data_set_takes_pass(dataset: str, types: list[str]) -> None:
    check_feasible(spec_of(dataset, types))


def failed(spec: NASExperimentSpec, index: int, reason: str, message: str) -> TrialRecord:
    candidate = make_strategy(spec).ask([], index + 1)[index]
    return TrialRecord(
        f"exp-{index}", index, index, candidate, TrialPhase.FAILED, message=message, reason=reason
    )


def test_a_trial_that_no_candidate_could_avoid_ends_the_experiment_at_once() -> None:
    spec = NASExperimentSpec.model_validate(
        {"training": {"dataset": "s3://data/x.csv"}, "budget": {"maxTrials": 10, "maxFailedTrials": 5}}
    )
    message = "training.dataset: s3://data/x.csv: no credentials (set AWS_ACCESS_KEY_ID ...)"
    step = decide("exp", spec, [failed(spec, 0, "DataUnavailable", message)], NASExperimentStatus(), 1, NOW)
    assert step.finished and step.status.phase is ExperimentPhase.FAILED and step.launch == []
    ended = next(c for c in step.status.conditions if c.type == "Failed")
    assert ended.reason == "DataUnavailable" and ended.message == f"exp-0: {message}"


def test_an_invalid_candidate_only_counts_against_the_failure_budget() -> None:
    spec = NASExperimentSpec.model_validate({"budget": {"maxTrials": 10, "maxFailedTrials": 5}})
    trial = failed(spec, 0, "InvalidCandidate", "architecture.layers[0] (conv2d): needs an image")
    step = decide("exp", spec, [trial], NASExperimentStatus(), 1, NOW)
    assert not step.finished and [t.name for t in step.launch] == ["exp-1"]
