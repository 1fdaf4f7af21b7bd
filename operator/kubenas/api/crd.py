"""Generate the CustomResourceDefinitions from the pydantic models (the single source of truth).

Pydantic emits JSON Schema 2020-12; Kubernetes wants a structural OpenAPI v3.0 schema: every node
typed, no $ref, no null branches, boolean exclusive bounds, int-or-string for resource quantities.
x-kubernetes-validations of a field and of its model add up; a domain field's Range (DOMAIN_BOUNDS)
becomes bounds of the domain's values, min and max.

So that `kubectl explain` answers, every description ends with what the schema says of the field, derived
from the models: its allowed values (enums, literals), its range (minimum, maximum) and its default
("Allowed: a, b. Range: [1, 64]. Default: a."); units are the descriptions' own words.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from pydantic import BaseModel

from kubenas.api.experiment import (
    API_VERSION,
    GROUP,
    NAME_RULES,
    OPERATOR_DEFAULTS,
    VERSION,
    NASExperimentSpec,
)
from kubenas.api.space import DOMAIN_BOUNDS
from kubenas.api.status import NASExperimentStatus, NASTrialSpec, NASTrialStatus

RULES = "x-kubernetes-validations"
# Where _convert leaves a field's default for _explain (any JSON value: the CRD itself keeps scalars only).
_DEFAULT = "x-kubenas-default"

_KEEP = {
    "type",
    "description",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "pattern",
    "x-kubernetes-validations",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
}


def structural_schema(model: type[BaseModel], description: str) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    defs = schema.pop("$defs", {})
    out = _convert(schema, defs)
    out["description"] = description
    _explain(out)
    return out


def _merge(base: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """node over base (a field over its type), with the validation rules of both."""
    merged = {**base, **node}
    if RULES in base and RULES in node:
        merged[RULES] = [*base[RULES], *node[RULES]]
    return merged


def _inline(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Resolve $ref, single allOf and nullable anyOf into one plain (still unconverted) node."""
    node = dict(node)
    while True:
        if "$ref" in node:
            node = _merge(defs[node.pop("$ref").split("/")[-1]], node)
        elif "allOf" in node and len(node["allOf"]) == 1:
            node = _merge(node.pop("allOf")[0], node)
        elif "anyOf" in node:
            branches = [b for b in node["anyOf"] if b.get("type") != "null"]
            if {b.get("type") for b in branches} == {"integer", "string"}:
                del node["anyOf"]
                node["x-kubernetes-int-or-string"] = True
                text = next(b for b in branches if b["type"] == "string")
                node.update({k: v for k, v in text.items() if k in ("maxLength", "pattern")})
            elif len(branches) == 1:
                del node["anyOf"]
                node = {**branches[0], **node}
            else:
                raise ValueError(f"cannot express union in a structural schema: {branches}")
        else:
            return node


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = _inline(node, defs)
    if node.pop(OPERATOR_DEFAULTS, False):
        return _without_defaults(_convert(node, defs))
    shown = _significant(node.get("default"), node, defs)
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "exclusiveMinimum" in node:
        node.update(minimum=node.pop("exclusiveMinimum"), exclusiveMinimum=True)
    if "exclusiveMaximum" in node:
        node.update(maximum=node.pop("exclusiveMaximum"), exclusiveMaximum=True)
    if "enum" in node and "type" not in node:
        node["type"] = "string"
    if "properties" in node:
        node["type"] = "object"
        node["properties"] = {k: _convert(v, defs) for k, v in node["properties"].items()}
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = _convert(node["additionalProperties"], defs)
    elif "additionalProperties" in node:
        del node["additionalProperties"]
    if "items" in node:
        node["items"] = _convert(node["items"], defs)
    if DOMAIN_BOUNDS in node:
        _bound_domain(node, _convert(node.pop(DOMAIN_BOUNDS), defs))
    default = node.get("default")
    result = {k: v for k, v in node.items() if k in _KEEP or k in ("exclusiveMinimum", "exclusiveMaximum")}
    if isinstance(default, bool | int | float | str):
        result["default"] = default
    if shown is not None:
        result[_DEFAULT] = shown
    if result.get("x-kubernetes-int-or-string"):
        result.pop("type", None)
    return result


def _without_defaults(node: dict[str, Any]) -> dict[str, Any]:
    """The schema with no default for the API server to fill in (descriptions still state them)."""
    node.pop("default", None)
    for child in node.get("properties", {}).values():
        _without_defaults(child)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            _without_defaults(node[key])
    return node


def _significant(value: Any, node: dict[str, Any], defs: dict[str, Any]) -> Any:
    """A default as worth stating: an object's fields that differ from their own defaults (None when all
    do not, or when there is no default)."""
    if isinstance(value, dict) and "properties" in node:
        props = node["properties"]
        out = {}
        for key, item in value.items():
            if key in props and item is not None and item != props[key].get("default"):
                shown = _significant(item, _inline(props[key], defs), defs)
                if shown is not None:
                    out[key] = shown
        return out or None
    return None if value in (None, {}, []) else value


def render(value: Any) -> str:
    """A value as a manifest spells it (YAML flow style): strings unquoted unless YAML would read them
    as something else."""
    if isinstance(value, str):
        plain = re.fullmatch(r"[A-Za-z0-9_./:-]+", value) is not None and yaml.safe_load(value) == value
        return value if plain else json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{render(k)}: {render(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def _range(node: dict[str, Any]) -> str | None:
    low, high = node.get("minimum"), node.get("maximum")
    low_open, high_open = node.get("exclusiveMinimum", False), node.get("exclusiveMaximum", False)
    if low is not None and high is not None:
        return f"{'(' if low_open else '['}{render(low)}, {render(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {render(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {render(high)}"
    return None


def _explain(node: dict[str, Any]) -> None:
    """Append to each description the field's allowed values, range and default (for a list: those of
    its items, and its own default)."""
    for child in node.get("properties", {}).values():
        _explain(child)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            _explain(node[key])
    items = node.get("items", {}) if node.get("type") == "array" else {}
    notes = []
    enum = node.get("enum", items.get("enum"))
    if enum:
        notes.append(f"Allowed: {', '.join(render(v) for v in enum)}.")
    bounds = _range(node) or _range(items)
    if bounds:
        notes.append(f"{'Range of each item' if items and not _range(node) else 'Range'}: {bounds}.")
    if _DEFAULT in node:
        notes.append(f"Default: {render(node.pop(_DEFAULT))}.")
    if notes:
        text = node.get("description", "").strip()
        if text and not text.endswith((".", "!", "?")):
            text += "."
        node["description"] = " ".join([text, *notes]).strip()


def _bound_domain(node: dict[str, Any], bounds: dict[str, Any]) -> None:
    """A domain's Range on each value it holds: its values' items, min and max."""
    props = node["properties"]
    for target in (props["values"]["items"], props["min"], props["max"]):
        target.update(bounds)


def _crd(
    kind: str,
    plural: str,
    short_names: list[str],
    spec: type[BaseModel],
    status: type[BaseModel],
    description: str,
    columns: list[dict[str, Any]],
    name_rules: list[Any] | None = None,
) -> dict[str, Any]:
    root: dict[str, Any] = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": f"The resource's API group and version: {API_VERSION}.",
            },
            "kind": {"type": "string", "description": f"The resource's kind: {kind}."},
            # The API server checks metadata itself; a CRD may only bound name (and generateName).
            # ... and nothing else: a description here makes it refuse the CRD.
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 253}}},
            "spec": structural_schema(spec, f"Desired state of the {kind}."),
            "status": structural_schema(status, f"Observed state of the {kind}."),
        },
    }
    if name_rules:
        root[RULES] = name_rules
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["kubenas"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def _column(name: str, path: str, type_: str = "string", priority: int = 0) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path}
    if priority:
        column["priority"] = priority
    return column


def custom_resource_definitions() -> dict[str, dict[str, Any]]:
    """File name -> CRD document."""
    age = _column("Age", ".metadata.creationTimestamp", "date")
    return {
        "nasexperiments.yaml": _crd(
            "NASExperiment",
            "nasexperiments",
            ["nasx", "nasexp"],
            NASExperimentSpec,
            NASExperimentStatus,
            "A neural architecture search: a search space, an objective, a strategy and a budget.",
            [
                _column("Phase", ".status.phase"),
                _column("Best", ".status.best.objectiveValue", "number"),
                _column("Trials", ".status.progress"),
                _column("Queued", ".status.trials.queued", "integer", priority=1),
                _column("GPU-Hours", ".status.gpuHours", "number", priority=1),
                _column("Strategy", ".spec.strategy.name", priority=1),
                _column("Best-Trial", ".status.best.trial", priority=1),
                age,
            ],
            NAME_RULES,
        ),
        "nastrials.yaml": _crd(
            "NASTrial",
            "nastrials",
            ["nast"],
            NASTrialSpec,
            NASTrialStatus,
            "One candidate of a NASExperiment, trained by a Job of the same name (a continuation after a "
            "pause by <name>-e<epochs>).",
            [
                _column("Experiment", ".spec.experiment"),
                _column("Phase", ".status.phase"),
                _column("Objective", ".status.objectiveValue", "number"),
                _column("Epochs", ".status.epochs", "integer"),
                _column("Reason", ".status.reason", priority=1),
                _column("From", ".spec.startFrom", priority=1),
                _column("Candidate", ".spec.candidateKey", priority=1),
                age,
            ],
        ),
    }
