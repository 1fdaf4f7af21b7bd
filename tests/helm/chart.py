"""The Helm chart as the tests see it: the helm binary built by tests/helm/build.sh, rendering, and
validation of rendered objects against the Kubernetes schemas (kubernetes-validate's strict ones) and,
for the Prometheus Operator's kinds, against that operator's own CRDs (fetched by build.sh)."""

from __future__ import annotations

import copy
import functools
import os
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "kubenas"
BUILD_SCRIPT = Path(__file__).resolve().parent / "build.sh"
ALL_FEATURES = Path(__file__).resolve().parent / "values-all.yaml"
ENV_BIN = "KUBENAS_HELM_BIN"
# Three recent Kubernetes minors whose schemas kubernetes-validate ships (the test control plane is 1.36).
KUBERNETES_VERSIONS = ("1.35.0", "1.36.0", "1.37.0")
RELEASE, NAMESPACE = "r", "kubenas-system"
Obj = dict[str, Any]


@functools.cache
def helm_bin() -> Path:
    """``$KUBENAS_HELM_BIN``/helm if set, else the helm that build.sh built (cached: instant after once)."""
    if env := os.environ.get(ENV_BIN):
        return Path(env) / "helm"
    done = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{BUILD_SCRIPT} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return Path(done.stdout.strip().splitlines()[-1]) / "helm"


def prometheus_operator_crds() -> Path:
    """The ServiceMonitor and PrometheusRule CRDs that build.sh fetched beside helm."""
    return helm_bin().parent.parent / "prometheus-operator-crds"


def helm(
    *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(helm_bin()), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done


def value_args(values_files: Iterable[Path] = (), sets: Iterable[str] = ()) -> list[str]:
    return [*(a for f in values_files for a in ("-f", str(f))), *(a for s in sets for a in ("--set", s))]


def render(values_files: Iterable[Path] = (), sets: Iterable[str] = ()) -> list[Obj]:
    """``helm template`` (test hooks included) as a list of objects."""
    out = helm("template", RELEASE, str(CHART), "-n", NAMESPACE, *value_args(values_files, sets)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def find(objects: Sequence[Obj], kind: str, name: str | None = None) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def validate_kubernetes(obj: Obj, version: str) -> None:
    """Raise if ``obj`` breaks Kubernetes ``version``'s schema of its kind (strict: no unknown field)."""
    kubernetes_validate.validate(obj, version, strict=True)


def _strict(schema: Any) -> Any:
    """An openAPIV3Schema where objects with declared properties take no other field: the API server
    would prune an unknown field silently, so a typo in the chart would go unnoticed."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        if isinstance(out.get("pattern"), str) and out["pattern"].startswith("^(?i)"):
            # Go's regexp takes the flag anywhere, Python's only first
            out["pattern"] = "(?i)^" + out["pattern"][5:]
        if out.get("x-kubernetes-int-or-string"):
            out.pop("type", None)
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def _crd_schemas() -> dict[tuple[str, str], Obj]:
    """(apiVersion, kind) -> the strict openAPIV3Schema of each version of the Prometheus Operator CRDs."""
    schemas = {}
    for path in sorted(prometheus_operator_crds().glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
            # metadata is checked by the API server itself, not by the CRD's schema
            schema.get("properties", {}).pop("metadata", None)
            schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def validate_prometheus_operator(obj: Obj) -> None:
    """Raise if ``obj`` (a ServiceMonitor or PrometheusRule) breaks its CRD's schema (unknown fields too)."""
    key = (obj["apiVersion"], obj["kind"])
    schemas = _crd_schemas()
    if key not in schemas:
        raise LookupError(f"no Prometheus Operator CRD for {key} in {prometheus_operator_crds()}")
    # Kubernetes' openAPIV3Schema is JSON Schema draft 4 with extensions (x-kubernetes-*, ignored here).
    jsonschema.Draft4Validator(schemas[key]).validate({k: v for k, v in obj.items() if k != "metadata"})
