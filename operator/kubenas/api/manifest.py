"""Read an experiment manifest (YAML) into the validated model, as the API server would read it."""

from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from kubenas.api.errors import SpecError, format_validation_error
from kubenas.api.experiment import OBJECT_META, NASExperiment, NASExperimentSpec


def load_manifest(path: str | Path) -> NASExperiment:
    """The one NASExperiment in the file; SpecError naming the field and the rule otherwise."""
    try:
        documents = [d for d in yaml.safe_load_all(Path(path).read_text()) if d is not None]
    except yaml.YAMLError as error:
        raise SpecError([f"{path}: not valid YAML: {error}"]) from None
    except OSError as error:
        raise SpecError([f"{path}: {error.strerror}"]) from None
    experiments = [d for d in documents if isinstance(d, dict) and d.get("kind") == "NASExperiment"]
    if len(experiments) != 1:
        raise SpecError(
            [f"{path}: expected exactly one document of kind NASExperiment, found {len(experiments)}"]
        )
    return parse_manifest(experiments[0])


def parse_manifest(document: Any) -> NASExperiment:
    """A NASExperiment document (as read from YAML or JSON) into the model; SpecError otherwise.

    It is read as `kubectl apply` sends it and the API server reads it, so that both accept the same
    manifests: a null in a typed field leaves the field unset (the API server prunes it), a whole
    number written 5.0 is 5, an integer field holds 64 bits, and types are JSON's, strictly ("5" is not
    a number, 1 is not true, NaN and infinities do not exist).
    """
    problems: list[str] = []
    data = _as_read(document, _schema(), "", problems)
    if problems:
        raise SpecError(problems)
    try:
        return NASExperiment.model_validate_json(json.dumps(data, default=str), strict=True)
    except ValidationError as error:
        raise SpecError(format_validation_error(error)) from None


@functools.cache
def _schema() -> dict[str, Any]:
    """The manifest's structural schema: where nulls are pruned and where unknown fields are kept."""
    from kubenas.api.crd import structural_schema

    spec = structural_schema(NASExperimentSpec, "")
    metadata: dict[str, Any] = {"properties": {k: {} for k in OBJECT_META}}
    known = {"apiVersion": {}, "kind": {}, "metadata": metadata, "spec": spec, "status": _UNKNOWN}
    return {"properties": known}


_UNKNOWN = {"x-kubernetes-preserve-unknown-fields": True}
_INT64 = range(-(2**63), 2**63)


_KEY = re.compile(r"[^\s\"'\[\],:]+")  # a key that reads unambiguously in a dotted path


def _child(path: str, key: str) -> str:
    """The path of `key` under `path`: dotted, or quoted in brackets when the key is empty or odd
    (`a[""]`, `labels["x y"]`), so a problem still names its field."""
    if _KEY.fullmatch(str(key)):
        return f"{path}.{key}" if path else str(key)
    return f"{path}[{json.dumps(str(key), ensure_ascii=False)}]"


def _as_read(value: Any, node: dict[str, Any], path: str, problems: list[str]) -> Any:
    """value as the API server decodes it under a schema node (see parse_manifest); what it cannot
    hold goes to problems."""
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(f"{path or '<document>'}: must be a finite number (JSON has no NaN or Infinity)")
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON numbers have no type: the API server stores 5.0 as 5
    if isinstance(value, int) and node.get("type") == "integer" and value not in _INT64:
        problems.append(f"{path}: must be a 64-bit integer (got {value:.3g})")
    keep_nulls = node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node
    if isinstance(value, list):
        item = _UNKNOWN if keep_nulls else node.get("items", {})
        return [_as_read(v, item, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    props, extra = node.get("properties", {}), node.get("additionalProperties")
    known = props if not isinstance(extra, dict) else {k: props.get(k, extra) for k in value}
    if keep_nulls:
        known = {k: _UNKNOWN for k in value}
    # A null in a typed field is pruned; an unknown field stays, to be refused even when null.
    return {
        k: _as_read(v, known.get(k, {}), _child(path, k), problems)
        for k, v in value.items()
        if v is not None or k not in known or keep_nulls
    }
