"""Where trials report: live metrics and object storage, as the spec, the operator's defaults, the trainer's
input and the Job say it."""

from __future__ import annotations

import pytest
from kubenas.api import NASExperimentSpec, NASExperimentStatus, NASTrialSpec
from kubenas.api.errors import SpecError
from kubenas.api.outputs import MetricsSpec, StorageSpec
from kubenas.engine.decide import decide
from kubenas.engine.execute import trainer_input
from kubenas.engine.observe import Health
from kubenas.k8s.defaults import OperatorDefaults
from kubenas.k8s.objects import trial_job
from kubenas.k8s.reconcile import check_cluster_spec
from kubenas.strategies import make_strategy

NOW = "2026-01-01T00:00:00Z"
STORAGE = {
    "bucket": "runs",
    "prefix": "team/nas",
    "endpoint": "http://s3.local:9000",
    "secretName": "s3-creds",
}
METRICS = {"pushgateway": "http://pgw:9091", "prometheus": "http://prom:9090"}


def spec_with(**fields: object) -> NASExperimentSpec:
    return NASExperimentSpec.model_validate({"training": {"epochs": 9}, **fields})


def trial_of(spec: NASExperimentSpec, index: int = 3, start_from: str | None = None) -> NASTrialSpec:
    candidate = make_strategy(spec).ask([], 1)[0]
    return NASTrialSpec(
        experiment="exp",
        index=index,
        candidate_key=candidate.key(),
        seed=5,
        candidate=candidate,
        start_from=start_from,
    )


def test_the_trainer_is_told_where_to_push_and_upload() -> None:
    spec = spec_with(metrics=METRICS, storage=STORAGE)
    given = trainer_input("exp-3", trial_of(spec), spec, 3, None, "team-a")
    assert given.report is not None and given.report.pushgateway == "http://pgw:9091"
    assert given.report.labels == {"namespace": "team-a", "experiment": "exp", "trial": "exp-3"}
    assert given.storage is not None
    assert given.storage.uri == "s3://runs/team/nas/team-a/exp/exp-3/"
    assert (given.storage.endpoint, given.stop_at_epoch) == ("http://s3.local:9000", 3)
    plain = trainer_input("exp-3", trial_of(spec_with()), spec_with(), None, None, "team-a")
    assert plain.report is None and plain.storage is None  # nothing configured: nothing pushed or uploaded
    assert "creds" not in given.model_dump_json()  # credentials never travel in the trial spec


def test_the_job_gets_storage_credentials_only_from_the_secret() -> None:
    spec = spec_with(storage=STORAGE)
    given = trainer_input("exp-3", trial_of(spec), spec, None, None, "ns")
    job = trial_job("exp-3", "ns", "uid", given, 3, "exp", spec.trial_template, storage=spec.storage)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    assert container["args"] == ["--resume"]  # a restarted pod goes on from its checkpoint in storage
    assert not any(e["name"].startswith("AWS_") for e in container["env"])
    bare = trial_job("exp-3", "ns", "uid", given, 3, "exp", spec.trial_template)
    assert "envFrom" not in bare["spec"]["template"]["spec"]["containers"][0]


def test_object_storage_replaces_the_checkpoint_volume_for_continued_trials() -> None:
    asha = {"rule": "asha", "minEpochs": 1, "reductionFactor": 3}
    without = spec_with(earlyStopping=asha)
    with pytest.raises(
        SpecError, match=r"spec\.storage: required on a cluster with earlyStopping\.rule asha"
    ):
        check_cluster_spec(without, make_strategy(without))
    stored = spec_with(earlyStopping=asha, storage=STORAGE)
    check_cluster_spec(stored, make_strategy(stored))


def test_the_operators_defaults_fill_only_what_the_experiment_leaves_out() -> None:
    defaults = OperatorDefaults(MetricsSpec.model_validate(METRICS), StorageSpec.model_validate(STORAGE))
    filled = defaults.apply(spec_with())
    assert filled.metrics == defaults.metrics and filled.storage == defaults.storage
    own = spec_with(storage={"bucket": "mine"})
    assert defaults.apply(own).storage == StorageSpec(bucket="mine")
    assert OperatorDefaults().apply(own) == own


@pytest.mark.parametrize(
    ("field", "value", "names"),
    [
        ("storage", {"bucket": "Bad_Bucket"}, "spec.storage.bucket"),
        ("storage", {"bucket": "runs", "prefix": "/abs/"}, "spec.storage.prefix"),
        ("storage", {"bucket": "runs", "secretName": "Not A Name"}, "spec.storage.secretName"),
        ("storage", {"bucket": "runs", "accessKey": "AKIA..."}, "spec.storage.accessKey"),
        ("metrics", {"pushgateway": "pgw:9091"}, "spec.metrics.pushgateway"),
        ("metrics", {"prometheus": "http://prom:9090"}, "spec.metrics.pushgateway"),
    ],
)
def test_bad_outputs_are_refused_naming_the_field(field: str, value: object, names: str) -> None:
    from kubenas.api.errors import parse_model

    with pytest.raises(SpecError, match=names.replace(".", r"\.")):
        parse_model(NASExperimentSpec, {field: value}, prefix="spec")


def test_a_channel_that_fails_is_a_condition_and_one_no_longer_used_is_dropped() -> None:
    spec = spec_with(metrics=METRICS)
    down = Health("MetricsAvailable", False, "PrometheusUnreachable", "no answer")
    first = decide("exp", spec, [], NASExperimentStatus(), 1, NOW, health=[down]).status
    condition = next(c for c in first.conditions if c.type == "MetricsAvailable")
    assert (condition.status, condition.reason, condition.message) == (
        "False",
        "PrometheusUnreachable",
        "no answer",
    )
    up = Health("MetricsAvailable", True, "PrometheusAnswers")
    later = decide("exp", spec, [], first, 1, "2026-01-01T00:01:00Z", health=[up]).status
    assert next(c for c in later.conditions if c.type == "MetricsAvailable").status == "True"
    unused = decide("exp", spec, [], later, 1, NOW).status
    assert all(c.type != "MetricsAvailable" for c in unused.conditions)
