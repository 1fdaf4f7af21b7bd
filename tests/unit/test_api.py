"""Manifests: defaults, and bad input rejected with the field and the rule."""

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubenas.api.crd import custom_resource_definitions
from kubenas.api.errors import SpecError
from kubenas.api.experiment import MAX_EPOCHS, MAX_TRIALS, NAME_LIMIT
from kubenas.api.kube import parse_quantity
from kubenas.api.manifest import load_manifest, parse_manifest
from kubenas.api.pod import VOLUME_SOURCES
from kubenas.api.space import BATCH_SIZE, DROPOUT, LEARNING_RATE, UNITS
from kubenas.cli import main

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, spec: dict[str, object], name: str = "exp") -> Path:
    path = tmp_path / "exp.yaml"
    doc = {
        "apiVersion": "kubenas.dev/v1alpha1",
        "kind": "NASExperiment",
        "metadata": {"name": name},
        "spec": spec,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_example_is_valid_and_defaults_fill_the_rest(tmp_path: Path) -> None:
    experiment = load_manifest(ROOT / "examples" / "digits.yaml")
    assert experiment.metadata.name == "digits"
    minimal = load_manifest(write(tmp_path, {}))
    assert minimal.spec.strategy.name == "random"
    assert minimal.spec.trial_template.resources.limits == {"nvidia.com/gpu": 1}
    assert minimal.spec.objective.goal == "maximize"


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_runs_locally_and_on_a_cluster(path: Path) -> None:
    """Its strategy accepts its settings and budget, and it has what a cluster needs (a checkpoint
    volume where trials continue checkpoints)."""
    from kubenas.k8s.reconcile import check_cluster_spec
    from kubenas.strategies import make_strategy

    spec = load_manifest(path).spec
    check_cluster_spec(spec, make_strategy(spec))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"budget": {"maxTrials": 0}}, "spec.budget.maxTrials: Input should be greater than or equal to 1"),
        (
            {"budget": {"maxTrials": 2, "parallelTrials": 3}},
            "spec.budget: parallelTrials must be <= maxTrials",
        ),
        ({"objective": {"metric": "bleu"}}, "spec.objective.metric: unknown metric 'bleu'"),
        (
            {"objective": {"direction": "up"}},
            "spec.objective.direction: Input should be 'maximize' or 'minimize'",
        ),
        ({"budgett": {}}, "spec.budgett: Extra inputs are not permitted"),
        (
            {"searchSpace": {"layers": {"activations": ["swish"]}}},
            "spec.searchSpace.layers.activations[0]: Input",
        ),
        (
            {"searchSpace": {"hyperparameters": {"learningRate": {"min": 0.1, "max": 0.01}}}},
            "spec.searchSpace.hyperparameters.learningRate: min must be <= max",
        ),
        ({"training": {"epochs": 0}}, "spec.training.epochs: Input should be greater than or equal to 1"),
    ],
)
def test_bad_spec_names_field_and_rule(tmp_path: Path, spec: dict[str, object], expected: str) -> None:
    with pytest.raises(SpecError) as error:
        load_manifest(write(tmp_path, spec))
    assert any(p.startswith(expected) for p in error.value.problems), error.value.problems


def test_bad_name_and_wrong_kind(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"metadata.name: String should match pattern"):
        load_manifest(write(tmp_path, {}, name="Bad_Name"))
    path = tmp_path / "other.yaml"
    path.write_text("kind: Deployment\n")
    with pytest.raises(SpecError, match="expected exactly one document of kind NASExperiment, found 0"):
        load_manifest(path)


def test_cli_prints_the_problem_and_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(write(tmp_path, {"strategy": {"name": "nope"}})), "--output", str(tmp_path)]) == 2
    assert "error: spec.strategy.name: unknown strategy 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "exp").exists()  # nothing was started


def test_crds_are_generated_from_the_models_and_not_stale() -> None:
    for folder in ("crds", "helm/kubenas/crds"):
        assert main(["crd", "--output", str(ROOT / folder), "--check"]) == 0, "regenerate: make crds"


def test_crd_schema_is_structural() -> None:
    def walk(node: dict[str, object], path: str) -> None:
        assert "$ref" not in node and "anyOf" not in node and "allOf" not in node, path
        if not node.get("x-kubernetes-int-or-string"):
            assert "type" in node, f"untyped node at {path}"
        for bound in ("minimum", "maximum"):
            value = node.get(bound)
            assert value is None or type(value) in (int, float), f"{path}.{bound} is {value!r}"
        for key, child in (node.get("properties") or {}).items():  # type: ignore[attr-defined]
            walk(child, f"{path}.{key}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                walk(node[key], f"{path}[]")  # type: ignore[arg-type]

    for crd in custom_resource_definitions().values():
        version = crd["spec"]["versions"][0]
        schema = version["schema"]["openAPIV3Schema"]
        walk(schema, crd["metadata"]["name"])
        assert "x-kubernetes-preserve-unknown-fields" not in schema["properties"]["spec"]
        assert version["subresources"] == {"status": {}}
        assert schema["properties"]["spec"]["description"]


# --- what the manifest fuzzer (tests/fuzz) found: the CRD and the models now agree on each ----------


def parse(spec: object, name: str = "exp", **top: object) -> list[str]:
    """The problems `kubenas validate` reports for a manifest (empty when it is valid)."""
    doc = {"apiVersion": "kubenas.dev/v1alpha1", "kind": "NASExperiment", "metadata": {"name": name}}
    doc.update(spec=spec, **top)
    try:
        parse_manifest(doc)
    except SpecError as error:
        return error.problems
    return []


def nasexperiment_schema() -> dict[str, Any]:
    crd = custom_resource_definitions()["nasexperiments.yaml"]
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_name_limit_leaves_room_for_every_child() -> None:
    """The longest name: its worst-case continuation Job and that Job's pods fit in 63 characters."""
    job = f"{'a' * NAME_LIMIT}-{MAX_TRIALS - 1}-e{MAX_EPOCHS}"
    assert (NAME_LIMIT, len(job), len(f"{job}-xxxxx")) == (44, 57, 63)
    assert parse({}, name="a" * NAME_LIMIT) == []
    assert parse({}, name="a" * (NAME_LIMIT + 1)) == [
        "metadata.name: must be at most 44 characters (got 45), so that a trial's Job "
        "<name>-<index>-e<epochs> and its pods <job>-<5 characters> fit in 63 "
        "(index < 100000, epochs <= 10000)"
    ]
    rules = nasexperiment_schema()["x-kubernetes-validations"]
    assert rules[0]["rule"] == "!has(self.metadata.name) || self.metadata.name.size() <= 44"
    assert rules[0]["fieldPath"] == ".metadata.name" and "so that a trial's Job" in rules[0]["message"]
    assert "matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')" in rules[1]["rule"]  # no dots, as the models


@pytest.mark.parametrize(
    ("field", "domain", "message"),
    [
        ("layers.units", {"values": [65537]}, "units: must lie in [1, 65536] (got 65537..65537)"),
        ("layers.count", {"min": 1, "max": 65}, "count: layer count must lie in [1, 64]"),
        ("hyperparameters.learningRate", {"min": 0.1, "max": 11.0}, "learningRate: must lie in (0, 10]"),
        ("hyperparameters.batchSize", {"values": [2**21]}, "batchSize: must lie in [1, 1048576]"),
        ("layers.dropout", {"values": [1.0]}, "dropout: must lie in [0, 1) (got 1..1)"),
    ],
)
def test_a_space_holds_only_what_a_candidate_may(field: str, domain: dict[str, object], message: str) -> None:
    """units 65537 (or a learning rate of 11, a batch of 2^21) passed the space and failed the first
    proposal, in the operator; the space's bounds are now the candidate's, in the models and the CRD."""
    section, name = field.split(".")
    problems = parse({"searchSpace": {section: {name: domain}}})
    assert problems and f"spec.searchSpace.{section}: {message}" in problems[0], problems
    node = nasexperiment_schema()["properties"]["spec"]["properties"]["searchSpace"]["properties"]
    bounded = node[section]["properties"][name]["properties"]
    assert bounded["max"].get("maximum") == bounded["values"]["items"].get("maximum") is not None


def test_space_bounds_are_the_candidate_fields_bounds() -> None:
    """Derived from the trial contract's Layer and Hyperparameters (Range.of), not written twice."""
    ranges = [str(r) for r in (UNITS, BATCH_SIZE, LEARNING_RATE, DROPOUT)]
    assert ranges == ["[1, 65536]", "[1, 1048576]", "(0, 10]", "[0, 1)"]


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"objective": {"metric": "mse"}}, ".objective.metric"),  # digits is classification
        ({"earlyStopping": {"rule": "asha", "minEpochs": 10}}, ".earlyStopping.minEpochs"),
        (
            {
                "earlyStopping": {"rule": "hyperband"},
                "searchSpace": {"hyperparameters": {"epochs": {"values": [2]}}},
            },
            ".searchSpace.hyperparameters.epochs",
        ),
    ],
)
def test_cross_field_rules_are_in_the_crd(spec: dict[str, object], path: str) -> None:
    """The models refused these, the API server let them in (the operator then marked them InvalidSpec)."""
    assert parse(spec)
    rules = nasexperiment_schema()["properties"]["spec"]["x-kubernetes-validations"]
    assert path in [r.get("fieldPath") for r in rules]


def test_training_rules_are_in_the_crd() -> None:
    assert parse({"training": {"dataset": "imagenet"}})[0].startswith(
        "spec.training.dataset: unknown data set"
    )
    assert parse({"training": {"validationFraction": 0.5, "testFraction": 0.5}})
    training = nasexperiment_schema()["properties"]["spec"]["properties"]["training"]
    rules = [r["rule"] for r in training["x-kubernetes-validations"]]
    assert any("self.dataset.endsWith('.npz')" in r for r in rules)
    assert any(r.endswith("<= 0.9") for r in rules)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"budget": {"maxTrials": "5"}}, "spec.budget.maxTrials: Input should be a valid integer"),
        ({"budget": {"maxTrials": 5.5}}, "spec.budget.maxTrials: Input should be a valid integer"),
        (
            {"strategy": {"reuseResults": "true"}},
            "spec.strategy.reuseResults: Input should be a valid boolean",
        ),
        ({"training": {"epochs": 1, "mixedPrecision": 1}}, "spec.training.mixedPrecision: Input should be a"),
        ({"objective": {"target": "0.9"}}, "spec.objective.target: Input should be a valid number"),
        ({"budget": {"typo": None}}, "spec.budget.typo: Extra inputs are not permitted"),
        (
            {"trialTemplate": {"imagePullPolicy": "Sometimes"}},
            "spec.trialTemplate.imagePullPolicy: Input should",
        ),
        ({"searchSpace": {"layers": {"dropout": {"values": [float("nan")]}}}}, "must be a finite number"),
    ],
)
def test_types_are_json_types_as_the_api_server_reads_them(spec: dict[str, object], expected: str) -> None:
    """`kubenas validate` coerced "5" to 5 and "true" to true, and let NaN through a range check; the
    API server refuses all of them (NaN cannot even be sent)."""
    problems = parse(spec)
    assert any(p.startswith(expected) or expected in p for p in problems), problems


def test_nulls_are_unset_and_whole_floats_are_integers_as_the_api_server_reads_them() -> None:
    """The API server prunes a null and stores 5.0 as 5; `kubenas validate` refused both."""
    doc = {"apiVersion": "kubenas.dev/v1alpha1", "kind": "NASExperiment", "metadata": {"name": "x"}}
    spec = {"budget": None, "training": {"epochs": 5.0, "task": None}, "strategy": {"settings": {"a": None}}}
    experiment = parse_manifest({**doc, "spec": spec})
    assert experiment.spec.budget.max_trials == 10 and experiment.spec.training.epochs == 5
    assert experiment.spec.strategy.settings == {"a": None}  # kept, as the API server keeps it


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"spec": None}, "spec: Field required"),
        ({"spec": {}, "specs": {}}, "specs: Extra inputs are not permitted"),
        ({"spec": {}, "apiVersio": {"": float("inf")}}, 'apiVersio[""]: must be a finite number'),
        ({"spec": {}, "metadata": {"name": "x", "lables": {}}}, "metadata: lables: not a field of metadata"),
        (
            {"spec": {}, "metadata": {"name": "x", "labels": {"a b": "c"}}},
            "metadata.labels: every key must be",
        ),
    ],
)
def test_the_manifest_outside_spec_is_checked_as_the_api_server_does(
    doc: dict[str, object], expected: str
) -> None:
    """The models defaulted a missing spec and ignored unknown top-level and metadata fields."""
    full = {"apiVersion": "kubenas.dev/v1alpha1", "kind": "NASExperiment", "metadata": {"name": "x"}, **doc}
    with pytest.raises(SpecError) as error:
        parse_manifest(full)
    assert any(p.startswith(expected) for p in error.value.problems), error.value.problems


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ({"resources": {"limits": {"gpu": 1}}}, "limits: every key must name a container resource"),
        (
            {"resources": {"requests": {"cpu": "lots"}}},
            "requests: every value must be a non-negative quantity",
        ),
        (
            {"resources": {"requests": {"memory": -1}}},
            "requests: every value must be a non-negative quantity",
        ),
        (
            {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1500m"}}},
            "requests: must be <= limits",
        ),
        ({"resources": {"limits": {"nvidia.com/gpu": "0.5"}}}, "limits: an extended resource"),
        (
            {"resources": {"requests": {"nvidia.com/gpu": 1}}},
            "limits: an extended resource <domain>/<name> that is",
        ),
        (
            {"tolerations": [{"operator": "Equal", "value": "x"}]},
            "operator: must be Exists when key is empty",
        ),
        ({"tolerations": [{"key": "k", "tolerationSeconds": 5}]}, "effect: must be NoExecute"),
        ({"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}, "value: must be empty"),
        ({"tolerations": [{"key": "a b"}]}, "key: must be a qualified name"),
        (
            {"nodeSelector": {"disk": "fast ssd"}},
            "every key must be a label key and every value a label value",
        ),
        ({"serviceAccountName": "Trainer"}, "String should match pattern"),
        ({"image": "\u00a0trainer"}, "must not begin or end with whitespace"),
        ({"checkpointVolume": {"hostPath": {"path": "/x"}, "emptyDir": {}}}, "must be one volume source"),
        ({"checkpointVolume": {"bucket": {}}}, "must be one volume source"),
        (
            {"checkpointVolume": {"persistentVolumeClaim": {}}},
            "persistentVolumeClaim.claimName: Field required",
        ),
        ({"checkpointVolume": {"hostPath": {"path": "/a/../b"}}}, "hostPath.path: must not contain '..'"),
        ({"checkpointVolume": {"nfs": {"server": "s", "path": "x"}}}, "nfs.path: String should match"),
    ],
)
def test_what_a_job_would_refuse_is_refused_at_apply(template: dict[str, object], expected: str) -> None:
    """Each of these passed the models and the CRD, and then the API server (or its client) refused
    every trial's Job: a persistentVolumeClaim without claimName made the operator raise on every pass."""
    problems = parse({"trialTemplate": template})
    assert any(p.startswith("spec.trialTemplate") and expected in p for p in problems), problems


def test_valid_templates_are_accepted() -> None:
    template = {
        "resources": {"requests": {"cpu": "500m", "nvidia.com/gpu": 1}, "limits": {"nvidia.com/gpu": "1"}},
        "tolerations": [
            {"operator": "Exists"},
            {"key": "gpu", "value": "a-1", "effect": "NoExecute", "tolerationSeconds": 5},
        ],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "serviceAccountName": "trainer.v1",
        "checkpointVolume": {"persistentVolumeClaim": {"claimName": "ck"}},
    }
    assert parse({"trialTemplate": template}) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", "0.5"),
        ("2Gi", "2147483648"),
        ("1e3", "1000"),
        (".5", "0.5"),
        ("1.", "1"),
        ("+1k", "1000"),
        (4, "4"),
    ],
)
def test_quantities_parse_as_kubernetes_parses_them(text: int | str, value: str) -> None:
    assert parse_quantity(text) == Decimal(value)


@pytest.mark.parametrize("text", ["lots", "1e1.5", "1ki", "2 Gi", "", "1E3E"])
def test_what_is_not_a_quantity(text: str) -> None:
    assert parse_quantity(text) is None


def test_volume_sources_require_what_the_kubernetes_client_requires() -> None:
    """A checkpoint volume goes into every trial's Job; the client refused a persistentVolumeClaim without
    claimName (a ValidationError on every pass of the operator), so each source's required fields are
    required at apply time too: the same sources, the same fields, as the client's models say."""
    from kubernetes.client import V1Volume

    def camel(model: Any, name: str) -> str:
        return str(model.attribute_map[name])

    expected = {}
    for name, field in V1Volume.model_fields.items():
        if name == "name":
            continue
        source = next(a for a in field.annotation.__args__ if a is not type(None))  # Optional[V1...Source]
        required = sorted(camel(source, n) for n, f in source.model_fields.items() if f.is_required())
        expected[camel(V1Volume, name)] = required
    assert {k: sorted(v) for k, v in VOLUME_SOURCES.items()} == expected
