"""The kubenas SearchSpace as a flat ParamSpace, and Candidate <-> point.

Each searchable field is one row of LAYER_FIELDS or HYPERPARAMETER_FIELDS: its name in Layer /
Hyperparameters, the domain it comes from in the SearchSpace, how a value is rounded and, for a layer
field, which layer types take it. Layer i's parameters are named `layers[i].<field>` and exist only while
`layers.count` > i; a type-specific one (kernelSize and pooling: conv1d/conv2d; bidirectional: lstm/gru)
also only while `layers[i].type` is a type that takes it. Where every type of the space takes the field
that second condition is left out, and where none does the field is not a parameter at all. Type comes
first among a layer's parameters, so every condition reads an earlier parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from kubenas_trainer.spec import (
    CONV_LAYERS,
    RECURRENT_LAYERS,
    Architecture,
    Candidate,
    Hyperparameters,
    Layer,
    LayerType,
)

from kubenas.api.space import FloatDomain, IntDomain, SearchSpace
from kubenas.space.params import (
    ActiveIf,
    Categorical,
    Integer,
    Param,
    ParamSpace,
    Point,
    Real,
    Value,
    When,
    all_of,
    is_active,
)

COUNT = "layers.count"


def int_param(name: str, domain: IntDomain, condition: When | None = None) -> Param:
    if domain.values is not None:
        return Categorical(name, tuple(sorted(set(domain.values))), condition)
    assert domain.min is not None and domain.max is not None
    return Integer(name, domain.min, domain.max, 1 if domain.log else domain.step, domain.log, condition)


def float_param(name: str, domain: FloatDomain, condition: When | None = None) -> Param:
    if domain.values is not None:
        return Categorical(name, tuple(sorted(set(domain.values))), condition)
    assert domain.min is not None and domain.max is not None
    return Real(name, domain.min, domain.max, domain.log, condition)


def choice_param(name: str, options: list[Any], condition: When | None = None) -> Param:
    return Categorical(name, tuple(dict.fromkeys(_plain(o) for o in options)), condition)


def _keep(value: float) -> float:
    return value


@dataclass(frozen=True)
class Field:
    """One searchable field: `attr` on the model, its camelCase `alias`, its domain in the SearchSpace
    (None when the space leaves the field out), how a value is rounded, and which value stands for
    "unset" in a point (None: the domain's first value fills a field that does not apply)."""

    attr: str
    alias: str
    param: Callable[[SearchSpace, str, When | None], Param | None]
    rounding: Callable[[float], float] = _keep
    off: Value | None = None
    applies: Callable[[LayerType], bool] = lambda _: True


def _optional_float(domain: FloatDomain | None, name: str, condition: When | None) -> Param | None:
    return None if domain is None else float_param(name, domain, condition)


def _optional_int(domain: IntDomain | None, name: str, condition: When | None) -> Param | None:
    return None if domain is None else int_param(name, domain, condition)


LAYER_FIELDS: tuple[Field, ...] = (
    Field("type", "type", lambda s, n, c: choice_param(n, list(s.layers.types), c)),
    Field("units", "units", lambda s, n, c: int_param(n, s.layers.units, c)),
    Field("activation", "activation", lambda s, n, c: choice_param(n, list(s.layers.activations), c)),
    Field("dropout", "dropout", lambda s, n, c: float_param(n, s.layers.dropout, c), lambda v: round(v, 4)),
    Field(
        "kernel_size",
        "kernelSize",
        lambda s, n, c: int_param(n, s.layers.kernel_sizes, c),
        applies=lambda t: t in CONV_LAYERS,
    ),
    Field(
        "pooling",
        "pooling",
        lambda s, n, c: choice_param(n, list(s.layers.pooling), c),
        off="none",
        applies=lambda t: t in CONV_LAYERS,
    ),
    Field(
        "bidirectional",
        "bidirectional",
        lambda s, n, c: choice_param(n, list(s.layers.bidirectional), c),
        off=False,
        applies=lambda t: t in RECURRENT_LAYERS,
    ),
    Field(
        "normalization",
        "normalization",
        lambda s, n, c: choice_param(n, list(s.layers.normalization), c),
        off="none",
    ),
    Field("residual", "residual", lambda s, n, c: choice_param(n, list(s.layers.residual), c), off=False),
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
    Field(
        "weight_decay",
        "weightDecay",
        lambda s, n, c: float_param(n, s.hyperparameters.weight_decay, c),
        lambda v: round(v, 6),
        off=0.0,
    ),
    Field(
        "momentum",
        "momentum",
        lambda s, n, c: _optional_float(s.hyperparameters.momentum, n, c),
        lambda v: round(v, 6),
    ),
    Field(
        "schedule",
        "schedule",
        lambda s, n, c: choice_param(n, list(s.hyperparameters.schedules), c),
        off="constant",
    ),
    Field(
        "warmup_epochs",
        "warmupEpochs",
        lambda s, n, c: int_param(n, s.hyperparameters.warmup_epochs, c),
        off=0,
    ),
    Field(
        "gradient_clip",
        "gradientClip",
        lambda s, n, c: float_param(n, s.hyperparameters.gradient_clip, c),
        lambda v: round(v, 6),
        off=0.0,
    ),
    Field(
        "gradient_clip_mode",
        "gradientClipMode",
        lambda s, n, c: choice_param(n, list(s.hyperparameters.gradient_clip_modes), c),
        off="norm",
    ),
    Field(
        "label_smoothing",
        "labelSmoothing",
        lambda s, n, c: float_param(n, s.hyperparameters.label_smoothing, c),
        lambda v: round(v, 6),
        off=0.0,
    ),
    Field("epochs", "epochs", lambda s, n, c: _optional_int(s.hyperparameters.epochs, n, c)),
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


def _contains(param: Param, value: Value) -> bool:
    if isinstance(param, Categorical):
        return value in param.choices
    return not isinstance(value, str) and param.low <= value <= param.high


def _filler(param: Param) -> Value:
    """A fixed value of the domain for a field that does not apply (so points stay complete)."""
    if isinstance(param, Categorical):
        return param.choices[0]
    return param.low


class CandidateCodec:
    """Translates between a SearchSpace's candidates and points of its ParamSpace."""

    def __init__(self, space: SearchSpace) -> None:
        self.search_space = space
        self.max_layers = space.layers.count.bounds()[1]
        params: list[Param] = [int_param(COUNT, space.layers.count)]
        self.layer_fields: list[Field] = []
        self.hyperparameter_fields: list[Field] = []
        self.taken_by: dict[str, tuple[Value, ...]] = {}  # field alias -> the space's types taking it
        for f in LAYER_FIELDS:
            taken_by = tuple(dict.fromkeys(_plain(t) for t in space.layers.types if f.applies(t)))
            if taken_by and f.param(space, layer_param(0, f), None) is not None:
                self.layer_fields.append(f)
                self.taken_by[f.alias] = taken_by
        for i in range(self.max_layers):
            for f in self.layer_fields:
                condition = all_of(ActiveIf(COUNT, i + 1), self._type_condition(i, f))
                param = f.param(space, layer_param(i, f), condition)
                assert param is not None
                params.append(param)
        for f in HYPERPARAMETER_FIELDS:
            if (p := f.param(space, hyperparameter_param(f), None)) is not None:
                self.hyperparameter_fields.append(f)
                params.append(p)
        self.space = ParamSpace(tuple(params))
        self.param_by_name = {p.name: p for p in params}

    def _type_condition(self, i: int, field: Field) -> ActiveIf | None:
        """Layer i's type takes the field (None: every type of the space does)."""
        if set(self.taken_by[field.alias]) == set(self.taken_by[LAYER_FIELDS[0].alias]):
            return None
        return ActiveIf(layer_param(i, LAYER_FIELDS[0]), one_of=self.taken_by[field.alias])

    def _encoded(self, name: str, field: Field, value: Any) -> Value:
        """A field's value in a point; an unset field becomes its "off" value, or a filler."""
        if value is not None:
            return _plain(value)
        param = self.param_by_name[name]
        return field.off if field.off is not None and _contains(param, field.off) else _filler(param)

    def encode(self, candidate: Candidate) -> Point:
        layers = candidate.architecture.layers
        point: Point = {COUNT: len(layers)}
        for i, layer in enumerate(layers):
            for f in self.layer_fields:
                name = layer_param(i, f)
                if is_active(self.param_by_name[name], point):
                    point[name] = self._encoded(name, f, getattr(layer, f.attr))
        hp = candidate.hyperparameters
        for f in self.hyperparameter_fields:
            name = hyperparameter_param(f)
            point[name] = self._encoded(name, f, getattr(hp, f.attr))
        return point

    def decode(self, point: Mapping[str, Value]) -> Candidate:
        count = point[COUNT]
        assert isinstance(count, int)
        layers = []
        for i in range(count):
            kind = LayerType(str(point[layer_param(i, LAYER_FIELDS[0])]))
            fields = {
                f.attr: self._value(point, layer_param(i, f), f)
                for f in self.layer_fields
                if f.applies(kind) and layer_param(i, f) in point
            }
            layers.append(Layer.model_validate(fields))
        hp = {f.attr: self._value(point, hyperparameter_param(f), f) for f in self.hyperparameter_fields}
        return Candidate(
            architecture=Architecture(layers=layers), hyperparameters=Hyperparameters.model_validate(hp)
        )

    def _value(self, point: Mapping[str, Value], name: str, field: Field) -> Value:
        value = point[name]
        param = self.param_by_name[name]
        if isinstance(param, Real) and isinstance(value, float):
            return min(param.high, max(param.low, field.rounding(value)))
        return value
