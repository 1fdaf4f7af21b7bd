"""What kubenas makes of a manifest, in process: `kubenas validate`, and the operator's first reconcile."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kubenas.api.errors import SpecError, parse_model
from kubenas.api.experiment import NASExperimentSpec
from kubenas.api.manifest import parse_manifest
from kubenas.k8s.reconcile import check_cluster_spec
from kubenas.strategies import make_strategy

# A field path as kubenas and the API server write them: spec.budget.maxTrials, spec.layers[0],
# metadata.name (a bare `spec` or `metadata` when the whole section is wrong).
FIELD = re.compile(r"(?<![\w.])(spec|metadata|apiVersion|kind)((\.|\[)[^\s:\"',]*)?(?=[\s:\"',]|$)")
# Other ways to name one: a problem that starts with its path (kubenas: `kinds: Extra inputs are not
# permitted`), the API server's `unknown field "x"`, and its decoder's Go type for metadata.
LEADING_PATH = re.compile(r"^([A-Za-z_][\w-]*(\.[\w-]+|\[\d+\]|\[\"[^\"]*\"\])*): ")
UNKNOWN_FIELD = re.compile(r'unknown field "([^"]+)"')
GO_TYPES = {"v1.ObjectMeta": "metadata"}


def named_fields(message: str) -> list[str]:
    """The field paths a message names."""
    fields = [m.group(0) for m in FIELD.finditer(message)]
    fields += [m.group(1) for m in UNKNOWN_FIELD.finditer(message)]
    fields += [GO_TYPES[t] for t in GO_TYPES if f"Go value of type {t}" in message]
    fields += [f"metadata.{m.group(1)}" for m in re.finditer(r"Go struct field ObjectMeta\.(\w+)", message)]
    if (leading := LEADING_PATH.match(message)) is not None:
        fields.append(leading.group(1))
    return fields


@dataclass(frozen=True)
class Verdict:
    problems: tuple[str, ...] = ()

    @property
    def accepted(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        return "accepted" if self.accepted else "; ".join(self.problems)


def validate(doc: Any) -> Verdict:
    """`kubenas validate`: the manifest's models, then its strategy (built from the spec)."""
    try:
        make_strategy(parse_manifest(doc).spec)
    except SpecError as error:
        return Verdict(tuple(error.problems))
    return Verdict()


def models(doc: Any) -> Verdict:
    """The models alone (what the CRD schema must agree with): no strategy is built."""
    try:
        parse_manifest(doc)
    except SpecError as error:
        return Verdict(tuple(error.problems))
    return Verdict()


def operator(stored: dict[str, Any]) -> Verdict:
    """The operator's first reconcile of the object as the API server stored it: InvalidSpec with
    these problems, or go (no warmStartFrom source exists where the fuzzer applies)."""
    try:
        spec = parse_model(NASExperimentSpec, stored.get("spec") or {}, prefix="spec")
        check_cluster_spec(spec, make_strategy(spec))
        if (source := spec.strategy.warm_start_from) is not None:
            raise SpecError([f"spec.strategy.warmStartFrom: no NASExperiment {source!r} in namespace"])
    except SpecError as error:
        return Verdict(tuple(error.problems))
    return Verdict()
