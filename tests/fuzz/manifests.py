"""NASExperiment manifests for fuzzing, valid and invalid: pure Hypothesis strategies, seeded for CI.

A case starts from a base document, either one of ``examples/*.yaml`` or one drawn from the structural
schema that ``kubenas crd`` generates from the pydantic models (types, enums, bounds, patterns, list
sizes; a domain is either ``values`` or ``min``/``max``; strategy settings come from each strategy's
own settings model). It then takes up to three mutations, each recorded as ``"<kind> at <path>"``:

- ``wrong-type``: a value of another JSON type (a string for a number, a list for an object, ...)
- ``out-of-range``: a boundary or absurd number (-1, 0, 2^31, 2^63, 1e300, 65537, 10001, ...)
- ``empty``: an empty list or object
- ``null``: null in place of the value
- ``missing``: a key removed (whole sections included: spec, metadata, spec.budget, ...)
- ``unknown-field``: an extra key (a near-typo of a real one, or a random name)
- ``huge-string``, ``unicode``: a string of thousands of characters, or one of non-ASCII characters
- ``strategy``: another strategy name (known or not) with settings of its own or unknown settings
- ``name``: metadata.name at the length limits, with capitals, dots, unicode, or empty
- ``cross-field``: one rule across fields broken (parallelTrials > maxTrials, min > max, a regression
  metric on a classification data set, ASHA's first rung past training.epochs, ...)

With ``finite=False`` numbers may also be NaN or infinite (YAML can say ``.nan``; JSON cannot, so the
cluster fuzzing keeps them out).
"""

from __future__ import annotations

import copy
import functools
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from kubenas.api.crd import structural_schema
from kubenas.api.experiment import API_VERSION, NASExperimentSpec
from kubenas.strategies import STRATEGIES
from kubenas_trainer.spec import BUILTIN_DATASETS, DOWNLOADABLE_DATASETS

ROOT = Path(__file__).resolve().parents[2]
Key = str | int
Schema = dict[str, Any]

SPEC_SCHEMA = structural_schema(NASExperimentSpec, "")
EXAMPLES = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((ROOT / "examples").glob("*.yaml"))}
DATASETS = [*BUILTIN_DATASETS, *DOWNLOADABLE_DATASETS, "data/train.csv", "s3://bucket/x.npz", "imagenet", "x"]
RESOURCES = [
    "cpu",
    "memory",
    "nvidia.com/gpu",
    "ephemeral-storage",
    "gpu",
    "example.com/fpga",
    "hugepages-2Mi",
]
# Resource quantities, the odd ones included ("1e1.5" and "1ki" are not quantities; "1." and ".5" are).
QUANTITIES = ["1", "500m", "2Gi", "100Mi", "0.5", "1e3", "0", "1.", ".5", "+1", "-1"]
QUANTITIES += ["1e1.5", "1E", "1ki", "1e400", "2 Gi", "1000m"]
VOLUMES = [
    {"emptyDir": {}},
    {"hostPath": {"path": "/tmp/kubenas"}},
    {"persistentVolumeClaim": {"claimName": "c"}},
]
# Numbers at and past the limits of the schema and of the trial contract.
BOUNDARY_NUMBERS = [-1, 0, 1, 2, -(10**6), 31, 32, 64, 65, 1000, 1001, 10000, 10001, 65536, 65537]
BOUNDARY_NUMBERS += [100000, 100001, 2**20 + 1, 2**31 - 1, 2**31, 2**63]
BOUNDARY_NUMBERS += [-0.5, 1e-300, 0.5, 0.9, 0.99, 1.0, 1.5, 10.0, 11.0, 1e300]
NON_FINITE = [float("nan"), float("inf"), float("-inf")]
# Lengths around the limits of metadata.name: this repository's, a label's (63), a DNS subdomain's (253).
NAME_LENGTHS = [1, 2, 40, 43, 44, 45, 46, 50, 51, 52, 53, 57, 58, 63, 64, 200, 253, 254, 300]


@dataclass(frozen=True)
class Case:
    """One manifest, where it came from, and what was done to it."""

    doc: Any
    base: str
    mutations: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.base} + {', '.join(self.mutations) or 'nothing'}"


# --- values from the schema -------------------------------------------------------------------------


@functools.cache
def spec_values() -> st.SearchStrategy[Any]:
    """spec documents the structural schema allows (built once: building strategies is the slow part)."""
    return from_schema(SPEC_SCHEMA, "spec")


@functools.cache
def settings_values(name: str) -> st.SearchStrategy[Any]:
    return from_schema(structural_schema(STRATEGIES[name].Settings, ""), "settings")


def from_schema(node: Schema, path: str) -> st.SearchStrategy[Any]:
    """Values the structural schema allows at `path` (as far as types, enums, bounds and patterns go;
    x-kubernetes-validations are left to chance: they are what the fuzzing is for)."""
    special = _SPECIAL.get(path)
    if special is not None:
        return special()
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if node.get("x-kubernetes-int-or-string"):
        return st.one_of(st.integers(0, 64), st.sampled_from(QUANTITIES))
    kind = node.get("type")
    if kind == "object":
        return _object(node, path)
    if kind == "array":
        items = node.get("items", {"type": "number"})
        low = node.get("minItems", 0)
        return st.lists(
            from_schema(items, f"{path}[]"), min_size=low, max_size=max(low, min(4, node.get("maxItems", 4)))
        )
    if kind == "integer":
        low = node.get("minimum", -10)
        return st.integers(low, node.get("maximum", max(low, 0) + 10_000))
    if kind == "number":
        low, high = node.get("minimum"), node.get("maximum")
        return st.floats(
            low,
            high if high is not None else 1e6,
            exclude_min=bool(node.get("exclusiveMinimum")),
            exclude_max=bool(node.get("exclusiveMaximum")),
            allow_nan=False,
            allow_infinity=False,
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        limit = node.get("maxLength", 40)
        if "pattern" in node:
            return st.from_regex(node["pattern"], fullmatch=True).filter(lambda s: 0 < len(s) <= limit)
        return st.text(
            string.ascii_lowercase + "-./", min_size=node.get("minLength", 0), max_size=min(limit, 20)
        )
    return st.none()


def _object(node: Schema, path: str) -> st.SearchStrategy[Any]:
    props: dict[str, Schema] = node.get("properties", {})
    if {"values", "min", "max"} <= set(props):
        return _domain(node, path)
    if props:
        required = set(node.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(v, f"{path}.{k}") for k, v in props.items() if k in required},
            optional={k: from_schema(v, f"{path}.{k}") for k, v in props.items() if k not in required},
        )
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        keys = st.text(string.ascii_lowercase + "./-", min_size=1, max_size=12)
        return st.dictionaries(keys, from_schema(extra, f"{path}.*"), max_size=3)
    return st.fixed_dictionaries({})


def _domain(node: Schema, path: str) -> st.SearchStrategy[dict[str, Any]]:
    """A domain: an explicit list, or a range (with log, and step for integers)."""
    props = node["properties"]
    number = from_schema(props["min"], f"{path}.min")
    values = st.fixed_dictionaries({"values": from_schema(props["values"], f"{path}.values")})
    extras = {"log": st.booleans()}
    if "step" in props:
        extras["step"] = from_schema(props["step"], f"{path}.step")
    ranged = st.builds(
        lambda pair, rest: {"min": min(pair), "max": max(pair), **rest},
        st.tuples(number, number),
        st.fixed_dictionaries({}, optional=extras),
    )
    return st.one_of(values, ranged)


@st.composite
def strategy_section(draw: st.DrawFn, names: tuple[str, ...] = tuple(STRATEGIES)) -> dict[str, Any]:
    """spec.strategy: a strategy and settings drawn from its own settings model."""
    node = SPEC_SCHEMA["properties"]["strategy"]["properties"]
    name = draw(st.sampled_from(names))
    out: dict[str, Any] = {"name": name}
    for key in ("seed", "reuseResults"):
        if draw(st.booleans()):
            out[key] = draw(from_schema(node[key], f"spec.strategy.{key}"))
    if name in STRATEGIES and draw(st.booleans()):
        out["settings"] = draw(settings_values(name))
    return out


_SPECIAL: dict[str, Any] = {
    "spec.strategy": strategy_section,
    "spec.training.dataset": lambda: st.sampled_from(DATASETS),
    "spec.training.target": lambda: st.sampled_from(["target", "y"]),
    "spec.trialTemplate.checkpointVolume": lambda: st.sampled_from(VOLUMES),
    "spec.trialTemplate.resources.requests": lambda: st.dictionaries(
        st.sampled_from(RESOURCES), st.one_of(st.integers(0, 4), st.sampled_from(QUANTITIES)), max_size=3
    ),
    "spec.trialTemplate.resources.limits": lambda: st.dictionaries(
        st.sampled_from(RESOURCES), st.one_of(st.integers(0, 4), st.sampled_from(QUANTITIES)), max_size=3
    ),
    "spec.trialTemplate.nodeSelector": lambda: st.dictionaries(
        st.sampled_from(["kubernetes.io/os", "disk", "kubenas.dev/pool"]),
        st.sampled_from(["linux", "ssd", "a-b.c_d"]),
        max_size=2,
    ),
    "spec.trialTemplate.serviceAccountName": lambda: st.sampled_from(["default", "trainer"]),
    "spec.trialTemplate.image": lambda: st.sampled_from(["ghcr.io/kubenas/kubenas-trainer:0.1.0", "trainer"]),
    "spec.trialTemplate.tolerations[].key": lambda: st.sampled_from(["nvidia.com/gpu", "dedicated"]),
    "spec.trialTemplate.tolerations[].value": lambda: st.sampled_from(["true", "gpu"]),
    "spec.metrics.pushgateway": lambda: st.sampled_from(["http://pushgateway:9091", "https://pg.example/x"]),
    "spec.metrics.prometheus": lambda: st.sampled_from(["http://prometheus:9090"]),
    "spec.storage.endpoint": lambda: st.sampled_from(["http://127.0.0.1:9000", "https://s3.example.com"]),
    "spec.strategy.warmStartFrom": lambda: st.sampled_from(["earlier", "digits"]),
}


@functools.cache
def names() -> st.SearchStrategy[str]:
    """metadata.name: mostly ordinary, sometimes at or past a limit, or not a name at all."""
    ordinary = st.from_regex(r"[a-z]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)
    sized = st.builds(lambda n, c: (c * n)[:n], st.sampled_from(NAME_LENGTHS), st.sampled_from("ab7"))
    odd = st.sampled_from(
        ["Digits", "digits.v2", "-digits", "digits-", "di_gits", "", "dígits", "数字", "a" * 45]
    )
    return st.one_of(ordinary, ordinary, ordinary, sized, odd)


@st.composite
def base_documents(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A starting document: an example, or one drawn from the schema."""
    if draw(st.integers(0, 3)) == 0:
        name = draw(st.sampled_from(sorted(EXAMPLES)))
        doc = copy.deepcopy(EXAMPLES[name])
        doc["metadata"]["name"] = draw(names())
        return f"example {name}", doc
    spec = draw(spec_values())
    doc = {
        "apiVersion": API_VERSION,
        "kind": "NASExperiment",
        "metadata": {"name": draw(names())},
        "spec": spec,
    }
    return "schema", doc


# --- mutations ---------------------------------------------------------------------------------------


def walk(doc: Any, path: tuple[Key, ...] = ()) -> Iterator[tuple[tuple[Key, ...], Any]]:
    """Every (path, value) under doc, containers included."""
    yield path, doc
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from walk(value, (*path, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from walk(value, (*path, i))


def dotted(path: tuple[Key, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "<root>"


def _set(doc: Any, path: tuple[Key, ...], value: Any) -> None:
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value


def _delete(doc: Any, path: tuple[Key, ...]) -> None:
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]


@functools.cache
def json_values(finite: bool) -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**40), 2**40),
        st.floats(allow_nan=not finite, allow_infinity=not finite),
        st.text(max_size=8),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=5,
    )


def _kind(value: Any) -> str:
    return (
        "number" if isinstance(value, int | float) and not isinstance(value, bool) else type(value).__name__
    )


@functools.cache
def _values_not_of(kind: str, finite: bool) -> st.SearchStrategy[Any]:
    """JSON values of any other kind than `kind` (a string for a number, a list for an object, ...)."""
    options = {
        "str": st.sampled_from(["5", "0.5", "true", "yes", "", "null", "1Gi"]),
        "number": st.sampled_from([5, 0, 1.5, -3]),
        "bool": st.booleans(),
        "list": st.lists(json_values(finite), max_size=2),
        "dict": st.dictionaries(st.sampled_from(["a", "values", "min"]), json_values(finite), max_size=2),
    }
    return st.one_of([option for name, option in options.items() if name != kind])


def _other_type(value: Any, finite: bool) -> st.SearchStrategy[Any]:
    return _values_not_of(_kind(value), finite)


def _near_typo(key: str) -> st.SearchStrategy[str]:
    return st.sampled_from([key[:-1] or "x", key + "s", key.lower() + "_", key.upper(), f"x-{key}", "extra"])


_UNICODE = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)


@st.composite
def mutate(draw: st.DrawFn, doc: dict[str, Any], finite: bool = True) -> str:
    """Mutate doc in place; return what was done."""
    nodes = [(p, v) for p, v in walk(doc) if p and p[0] in ("spec", "metadata")]
    kind = draw(
        st.sampled_from(
            [
                "wrong-type",
                "out-of-range",
                "empty",
                "null",
                "missing",
                "unknown-field",
                "huge-string",
                "unicode",
                "strategy",
                "name",
                "cross-field",
            ]
        )
    )
    if kind == "name":
        if not isinstance(doc.get("metadata"), dict):
            doc["metadata"] = {}
        doc["metadata"]["name"] = draw(names())
        return f"name {doc['metadata']['name'][:12]!r}... ({len(doc['metadata']['name'])} chars)"
    if kind == "strategy" and isinstance(doc.get("spec"), dict):
        section = draw(strategy_section((*STRATEGIES, "annealing", "Random", "grid-search")))
        if draw(st.booleans()):
            extra = draw(st.sampled_from(["populationSize", "sampleSize", "nStartupTrials", "bogus", "seed"]))
            section.setdefault("settings", {})[extra] = draw(
                st.one_of(st.integers(-5, 50), st.text(max_size=3))
            )
        doc["spec"]["strategy"] = section
        return f"strategy {section['name']} settings {sorted(section.get('settings', {}))}"
    if kind == "cross-field" and isinstance(doc.get("spec"), dict):
        return _cross_field(draw, doc["spec"])
    if kind in ("strategy", "cross-field"):
        return f"{kind} nowhere (spec is not a mapping)"
    if kind == "unknown-field":
        holders = [(p, v) for p, v in [((), doc), *nodes] if isinstance(v, dict)]
        path, holder = draw(st.sampled_from(holders))
        key = draw(_near_typo(draw(st.sampled_from(sorted(holder)))) if holder else st.just("extra"))
        if key in holder:
            key = f"{key}_"
        holder[key] = draw(json_values(finite))
        return f"unknown-field {key!r} at {dotted(path)}"
    if kind == "missing":
        path, _ = draw(st.sampled_from([(p, v) for p, v in [(("spec",), None), *nodes]]))
        if not _exists(doc, path):
            return "missing nothing"
        _delete(doc, path)
        return f"missing {dotted(path)}"
    typed = {
        "out-of-range": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "empty": lambda v: isinstance(v, list | dict),
        "huge-string": lambda v: isinstance(v, str),
        "unicode": lambda v: isinstance(v, str),
    }
    candidates = [(p, v) for p, v in nodes if typed.get(kind, lambda v: True)(v)]
    if not candidates:
        return f"{kind} nowhere"
    path, value = draw(st.sampled_from(candidates))
    if kind == "wrong-type":
        new = draw(_other_type(value, finite))
    elif kind == "out-of-range":
        new = draw(st.sampled_from(BOUNDARY_NUMBERS + ([] if finite else NON_FINITE)))
    elif kind == "empty":
        new = [] if isinstance(value, list) else {}
    elif kind == "null":
        new = None
    elif kind == "huge-string":
        new = draw(st.sampled_from(["a", "x-", "é", "7"])) * draw(st.sampled_from([254, 2049, 5000]))
    else:
        # Unicode anywhere, Unicode whitespace (which regex engines disagree on), full-width letters.
        text = draw(_UNICODE)
        odd = [text, value + text, "\u00a0" + value, value + "\u3000x", value + "\n", "\uff44\uff49\uff47"]
        new = draw(st.sampled_from(odd))
    _set(doc, path, new)
    return f"{kind} at {dotted(path)}"


def _exists(doc: Any, path: tuple[Key, ...]) -> bool:
    for key in path:
        if (isinstance(doc, dict) and key in doc) or (
            isinstance(doc, list) and isinstance(key, int) and key < len(doc)
        ):
            doc = doc[key]
        else:
            return False
    return True


def _cross_field(draw: st.DrawFn, spec: dict[str, Any]) -> str:
    """Break one rule that spans fields (each a rule the models check)."""
    rule = draw(
        st.sampled_from(
            [
                "parallel>max",
                "min>max",
                "values+range",
                "log<=0",
                "regression-metric",
                "classification-metric",
                "asha-epochs",
                "asha-searched-epochs",
                "fractions",
                "count>64",
                "units>65536",
                "learning-rate>10",
                "dropout>=1",
            ]
        )
    )
    space = spec.setdefault("searchSpace", {}) if isinstance(spec.get("searchSpace", {}), dict) else {}
    layers = space.setdefault("layers", {}) if isinstance(space.get("layers", {}), dict) else {}
    hyper = (
        space.setdefault("hyperparameters", {}) if isinstance(space.get("hyperparameters", {}), dict) else {}
    )
    training = spec.setdefault("training", {}) if isinstance(spec.get("training", {}), dict) else {}
    if rule == "parallel>max":
        top = draw(st.integers(1, 5))
        spec["budget"] = {"maxTrials": top, "parallelTrials": top + draw(st.integers(1, 3))}
    elif rule == "min>max":
        hyper["batchSize"] = {"min": 64, "max": draw(st.integers(1, 63))}
    elif rule == "values+range":
        layers["units"] = {"values": [8], "min": 1, "max": 4}
    elif rule == "log<=0":
        hyper["learningRate"] = {"min": draw(st.sampled_from([0, -0.1, 0.0])), "max": 0.1, "log": True}
    elif rule == "regression-metric":
        training["dataset"] = draw(st.sampled_from(["digits", "iris", "mnist"]))
        spec["objective"] = {"metric": draw(st.sampled_from(["mse", "mae", "r2"]))}
    elif rule == "classification-metric":
        training["dataset"] = draw(st.sampled_from(["diabetes", "sunspots"]))
        spec["objective"] = {"metric": draw(st.sampled_from(["accuracy", "f1", "precision", "recall"]))}
    elif rule == "asha-epochs":
        epochs = draw(st.integers(1, 5))
        training["epochs"] = epochs
        spec["earlyStopping"] = {"rule": draw(st.sampled_from(["asha", "hyperband"])), "minEpochs": epochs}
    elif rule == "asha-searched-epochs":
        hyper["epochs"] = {"values": [2, 4]}
        spec["earlyStopping"] = {"rule": "asha"}
    elif rule == "fractions":
        training["validationFraction"] = draw(st.sampled_from([0.5, 0.7]))
        training["testFraction"] = draw(st.sampled_from([0.45, 0.5]))
    elif rule == "count>64":
        layers["count"] = {"min": 1, "max": draw(st.sampled_from([65, 100]))}
    elif rule == "units>65536":
        layers["units"] = {"values": [draw(st.sampled_from([65537, 100000]))]}
    elif rule == "learning-rate>10":
        hyper["learningRate"] = {"min": 0.1, "max": draw(st.sampled_from([11.0, 100.0]))}
    else:
        layers["dropout"] = {"values": [draw(st.sampled_from([1.0, 1.5]))]}
    return f"cross-field {rule}"


@st.composite
def manifests(draw: st.DrawFn, finite: bool = True) -> Case:
    """A manifest (mostly a mapping; JSON-representable when finite), its base and its mutations."""
    base, doc = draw(base_documents())
    done = tuple(draw(mutate(doc, finite)) for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3]))))
    return Case(doc, base, done)


def corpus(count: int, seed_value: int = 20240601, finite: bool = True) -> list[Case]:
    """`count` cases, the same ones on every run (one Hypothesis run with a fixed seed, no database)."""
    cases: list[Case] = []

    @seed(seed_value)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(manifests(finite))
    def collect(case: Case) -> None:
        cases.append(case)

    collect()
    return cases
