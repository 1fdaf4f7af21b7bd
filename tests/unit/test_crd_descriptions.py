"""`kubectl explain` answers: every field of the generated CRDs is described, and its description names the
allowed values, the range and the default the models declare, and the unit of a quantity."""

from __future__ import annotations

import re
from collections.abc import Iterator
from enum import StrEnum
from typing import Any, Literal

import pytest
from kubenas.api.crd import custom_resource_definitions, render, structural_schema
from pydantic import BaseModel, Field

GENERATED = ("Allowed:", "Range:", "Range of each item:", "Default:")


def fields() -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, schema node) of every field of both CRDs, list items included."""

    def walk(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for name, child in node.get("properties", {}).items():
            yield f"{path}.{name}", child
            yield from walk(child, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            yield from walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            yield from walk(node["additionalProperties"], f"{path}{{}}")

    for crd in custom_resource_definitions().values():
        root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        kind = crd["spec"]["names"]["kind"]
        # metadata is the API server's: a CRD may bound its name and say nothing else, not even describe it
        yield from ((p, n) for p, n in walk(root, kind) if not p.startswith(f"{kind}.metadata"))


FIELDS = dict(fields())


def test_every_field_has_a_description_of_its_own() -> None:
    assert len(FIELDS) > 200
    for path, node in FIELDS.items():
        text = node.get("description", "")
        assert text and not text.startswith(GENERATED), f"{path}: no description of its own ({text!r})"
        for note in ("Allowed:", "Default:"):
            assert text.count(note) <= 1, f"{path}: {note} twice: {text}"


def enum_of(node: dict[str, Any]) -> list[Any] | None:
    if "enum" in node:
        return list(node["enum"])
    items = node.get("items", {}) if node.get("type") == "array" else {}
    return list(items["enum"]) if "enum" in items else None


def test_every_enum_field_names_all_its_values() -> None:
    enums = {path: values for path, node in FIELDS.items() if (values := enum_of(node))}
    assert len(enums) > 20
    for path, values in enums.items():
        allowed = f"Allowed: {', '.join(render(v) for v in values)}."
        assert allowed in FIELDS[path]["description"], f"{path}: {FIELDS[path]['description']}"
    layers = "NASExperiment.spec.searchSpace.layers"
    assert (
        "Allowed: relu, tanh, sigmoid, gelu, elu, leaky_relu, selu, silu."
        in FIELDS[f"{layers}.activations"]["description"]
    )
    metric = FIELDS["NASExperiment.spec.objective.metric"]["description"]
    assert "Allowed: accuracy, f1, precision, recall, loss, mse, mae, r2, trainingSeconds." in metric
    status = FIELDS["NASExperiment.status.conditions[].status"]["description"]
    assert 'Allowed: "True", "False", Unknown.' in status  # quoted where YAML would read a boolean
    policy = FIELDS["NASExperiment.spec.trialTemplate.imagePullPolicy"]["description"]
    assert "Allowed: Always, IfNotPresent, Never." in policy


def test_every_field_with_a_default_names_it() -> None:
    defaults = {path: node["default"] for path, node in FIELDS.items() if "default" in node}
    assert len(defaults) > 40
    for path, default in defaults.items():
        assert f"Default: {render(default)}." in FIELDS[path]["description"], path
    # Lists and objects (which the CRD itself leaves to the models) name theirs too, without the fields
    # that are at their own defaults.
    spec = "NASExperiment.spec"
    expected = {
        f"{spec}.searchSpace.layers.types": "Default: [dense].",
        f"{spec}.searchSpace.layers.count": "Default: {min: 1, max: 3}.",
        f"{spec}.searchSpace.layers.units": "Default: {values: [32, 64, 128, 256]}.",
        f"{spec}.searchSpace.hyperparameters.learningRate": "Default: {min: 0.0001, max: 0.1, log: true}.",
        f"{spec}.trialTemplate.resources": (
            'Default: {requests: {cpu: "1", memory: 2Gi}, limits: {nvidia.com/gpu: 1}}.'
        ),
        f"{spec}.trialTemplate.image": "Default: ghcr.io/kubenas/kubenas-trainer:0.1.0.",
    }
    for path, text in expected.items():
        assert text in FIELDS[path]["description"], f"{path}: {FIELDS[path]['description']}"
    # A section whose every field is at its default says so field by field, not as one big object.
    assert "Default:" not in FIELDS[f"{spec}.searchSpace"]["description"]
    assert "Default:" not in FIELDS[f"{spec}.training"]["description"]


def test_every_bounded_field_names_its_range() -> None:
    bounded = {path: node for path, node in FIELDS.items() if "minimum" in node or "maximum" in node}
    assert len(bounded) > 40
    for path, node in bounded.items():
        assert re.search(r"Range: [\[(>=<]", node["description"]), f"{path}: {node['description']}"
    dropout = FIELDS["NASExperiment.spec.searchSpace.layers.dropout.max"]["description"]
    assert "Range: [0.0, 1.0)." in dropout
    learning_rate = FIELDS["NASExperiment.spec.searchSpace.hyperparameters.learningRate.values"][
        "description"
    ]
    assert "Range of each item: (0.0, 10.0]." in learning_rate
    assert "Range: >= 0." in FIELDS["NASExperiment.spec.budget.maxFailedTrials"]["description"]


# A field named like a quantity must say its unit.
UNITS = [
    (r"Seconds$", "seconds"),
    (r"(Epochs|Epoch|^epochs)$", "epoch"),
    (r"Time$", "RFC 3339"),
    (r"^sizeLimit$", "bytes"),
    (r"^(requests|limits)$", "bytes"),
    (r"^(requests|limits)$", "cores"),
    (r"^sequenceLength$", "time steps"),
]


@pytest.mark.parametrize(("pattern", "unit"), UNITS)
def test_quantities_name_their_unit(pattern: str, unit: str) -> None:
    named = {p: n for p, n in FIELDS.items() if re.search(pattern, p.rsplit(".", 1)[-1].removesuffix("[]"))}
    assert named, pattern
    for path, node in named.items():
        assert unit.lower() in node["description"].lower(), f"{path}: {node['description']}"


class Color(StrEnum):
    RED = "red"
    GREEN = "green"


class Sample(BaseModel):
    colors: list[Color] = Field(default=[Color.RED], description="Colours to choose from")
    mode: Literal["fast", "slow"] | None = Field(default=None, description="How.")
    size: int = Field(default=4, ge=1, lt=10, description="Size in bytes.")


def test_notes_are_derived_from_the_model_not_written_by_hand() -> None:
    schema = structural_schema(Sample, "A sample.")["properties"]
    assert schema["colors"]["description"] == "Colours to choose from. Allowed: red, green. Default: [red]."
    assert schema["mode"]["description"] == "How. Allowed: fast, slow."
    assert schema["size"]["description"] == "Size in bytes. Range: [1, 10). Default: 4."
