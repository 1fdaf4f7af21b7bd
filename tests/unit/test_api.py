"""Manifests: defaults, and bad input rejected with the field and the rule."""

from pathlib import Path

import pytest
import yaml
from kubenas.api.crd import custom_resource_definitions
from kubenas.api.errors import SpecError
from kubenas.api.manifest import load_manifest
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
