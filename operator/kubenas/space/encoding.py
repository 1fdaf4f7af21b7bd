"""The kubenas SearchSpace as a flat ParamSpace, and Candidate <-> point.

Each searchable field is one row of LAYER_FIELDS or HYPERPARAMETER_FIELDS: its name in Layer /
Hyperparameters, the domain it comes from in the SearchSpace and how a value is rounded. Layer i's
parameters are named `layers[i].<field>` and exist only while `layers.count` > i.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from kubenas_trainer.spec import Architecture, Candidate, Hyperparameters, Layer

from kubenas.api.space import FloatDomain, IntDomain, SearchSpace
from kubenas.space.params import Categorical, Condition, Integer, Param, ParamSpace, Point, Real, Value

COUNT = "layers.count"


def int_param(name: str, domain: IntDomain, condition: Condition | None = None) -> Param:
    if domain.values is not None:
        return Categorical(name, tuple(sorted(set(domain.values))), condition)
    assert domain.min is not None and domain.max is not None
    return Integer(name, domain.min, domain.max, 1 if domain.log else domain.step, domain.log, condition)


def float_param(name: str, domain: FloatDomain, condition: Condition | None = None) -> Param:
    if domain.values is not None:
        return Categorical(name, tuple(sorted(set(domain.values))), condition)
    assert domain.min is not None and domain.max is not None
    return Real(name, domain.min, domain.max, domain.log, condition)


def choice_param(name: str, options: list[Any], condition: Condition | None = None) -> Param:
    return Categorical(name, tuple(dict.fromkeys(_plain(o) for o in options)), condition)


def _keep(value: float) -> float:
    return value


@dataclass(frozen=True)
class Field:
    """One searchable field: `attr` on the model, its camelCase `alias`, its domain in the SearchSpace."""

    attr: str
    alias: str
    param: Callable[[SearchSpace, str, Condition | None], Param]
    rounding: Callable[[float], float] = _keep


LAYER_FIELDS: tuple[Field, ...] = (
    Field("type", "type", lambda s, n, c: choice_param(n, list(s.layers.types), c)),
    Field("units", "units", lambda s, n, c: int_param(n, s.layers.units, c)),
    Field("activation", "activation", lambda s, n, c: choice_param(n, list(s.layers.activations), c)),
    Field("dropout", "dropout", lambda s, n, c: float_param(n, s.layers.dropout, c), lambda v: round(v, 4)),
)

HYPERPARAMETER_FIELDS: tuple[Field, ...] = (
    Field(
        "learning_rate",
        "learningRate",
        lambda s, n, c: float_param(n, s.hyperparameters.learning_rate, c),
        lambda v: float(f"{v:.6g}"),
    ),
    Field("optimizer", "optimizer", lambda s, n, c: choice_param(n, list(s.hyperparameters.optimizers), c)),
    Field("batch_size", "batchSize", lambda s, n, c: int_param(n, s.hyperparameters.batch_size, c)),
)


def layer_param(i: int, field: Field) -> str:
    return f"layers[{i}].{field.alias}"


def hyperparameter_param(field: Field) -> str:
    return f"hyperparameters.{field.alias}"


def _plain(value: Any) -> Value:
    """Enum members as their plain value, so points compare and serialise simply."""
    plain = value.value if isinstance(value, Enum) else value
    assert isinstance(plain, str | int | float)
    return plain


class CandidateCodec:
    """Translates between a SearchSpace's candidates and points of its ParamSpace."""

    def __init__(self, space: SearchSpace) -> None:
        self.search_space = space
        self.max_layers = space.layers.count.bounds()[1]
        params: list[Param] = [int_param(COUNT, space.layers.count)]
        for i in range(self.max_layers):
            condition = Condition(COUNT, i + 1)
            params += [f.param(space, layer_param(i, f), condition) for f in LAYER_FIELDS]
        params += [f.param(space, hyperparameter_param(f), None) for f in HYPERPARAMETER_FIELDS]
        self.space = ParamSpace(tuple(params))

    def encode(self, candidate: Candidate) -> Point:
        layers = candidate.architecture.layers
        point: Point = {COUNT: len(layers)}
        for i, layer in enumerate(layers):
            point |= {layer_param(i, f): _plain(getattr(layer, f.attr)) for f in LAYER_FIELDS}
        hp = candidate.hyperparameters
        point |= {hyperparameter_param(f): _plain(getattr(hp, f.attr)) for f in HYPERPARAMETER_FIELDS}
        return point

    def decode(self, point: Mapping[str, Value]) -> Candidate:
        count = point[COUNT]
        assert isinstance(count, int)
        layers = [
            Layer.model_validate({f.attr: self._value(point, layer_param(i, f), f) for f in LAYER_FIELDS})
            for i in range(count)
        ]
        hp = {f.attr: self._value(point, hyperparameter_param(f), f) for f in HYPERPARAMETER_FIELDS}
        return Candidate(
            architecture=Architecture(layers=layers), hyperparameters=Hyperparameters.model_validate(hp)
        )

    def _value(self, point: Mapping[str, Value], name: str, field: Field) -> Value:
        value = point[name]
        param = self.space.by_name(name)
        if isinstance(param, Real) and isinstance(value, float):
            return min(param.high, max(param.low, field.rounding(value)))
        return value
