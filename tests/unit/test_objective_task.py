"""An experiment's objective must be a metric its data set's task reports."""

import pytest
from kubenas.api.errors import SpecError, parse_model
from kubenas.api.experiment import NASExperimentSpec


@pytest.mark.parametrize(
    ("objective", "training", "message"),
    [
        ("accuracy", {"dataset": "diabetes"}, "accuracy is not reported for regression data set 'diabetes'"),
        ("f1", {"dataset": "sunspots"}, "use one of mse, mae, r2, loss"),
        ("mse", {"dataset": "digits"}, "mse is not reported for classification data set 'digits'"),
        ("r2", {"dataset": "data/t.csv", "task": "classification"}, "r2 is not reported for classification"),
    ],
)
def test_objective_outside_the_task_is_rejected(
    objective: str, training: dict[str, str], message: str
) -> None:
    with pytest.raises(SpecError) as error:
        parse_model(NASExperimentSpec, {"objective": {"metric": objective}, "training": training}, "spec")
    assert str(error.value).startswith("spec: objective.metric: ") and message in str(error.value)


@pytest.mark.parametrize(
    ("objective", "dataset"),
    [
        ("mse", "diabetes"),
        ("r2", "co2"),
        ("accuracy", "mnist"),
        ("loss", "sunspots"),
        ("trainingSeconds", "iris"),
        ("accuracy", "data/unknown.csv"),
        ("mae", "s3://b/k.parquet"),
    ],
)
def test_objectives_that_fit_or_cannot_be_checked_yet_are_accepted(objective: str, dataset: str) -> None:
    parse_model(NASExperimentSpec, {"objective": {"metric": objective}, "training": {"dataset": dataset}})
