"""Population Based Training's exploit and explore steps (Jaderberg et al., 2017), pure.

At a ready point (e.g. every few epochs), each trial in the bottom `quantile` of the population by
score copies the checkpoint and hyperparameters of a trial drawn from the top `quantile` (exploit),
then perturbs them (explore): a numeric hyperparameter is multiplied by one of `factors` (on its
log scale where it has one, clipped to its range) or, with `resampleProbability`, drawn afresh; a
categorical one moves to a neighbouring choice or is drawn afresh. Only hyperparameters change: the
architecture must stay, because the weights are copied. Every change comes with a readable log line.

Not wired yet: it needs checkpoints and a trial that can take new hyperparameters when it resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
from kubenas_trainer.spec import CamelModel
from pydantic import Field, model_validator

from kubenas.space.params import Categorical, Integer, Param, ParamSpace, Point, Value, sample_value
from kubenas.strategies.searcher import rng_for


class PBTSettings(CamelModel):
    quantile: float = Field(default=0.25, gt=0.0, le=0.5, description="Share that exploits / is exploited.")
    resample_probability: float = Field(
        default=0.25, ge=0.0, le=1.0, description="Chance that explore draws a value afresh."
    )
    factors: tuple[float, float] = Field(default=(0.8, 1.2), description="Multipliers of a numeric value.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        low, high = self.factors
        if not 0.0 < low < 1.0 < high:
            raise ValueError(f"factors must be (low, high) with 0 < low < 1 < high (factors={self.factors})")
        return self


@dataclass(frozen=True)
class Member:
    name: str
    point: Point
    score: float | None


@dataclass(frozen=True)
class Exploit:
    """`target` restarts from `source`'s checkpoint with `point`; `log` says what changed and why."""

    target: str
    source: str
    point: Point
    log: tuple[str, ...]


def is_hyperparameter(name: str) -> bool:
    return name.startswith("hyperparameters.")


def explore(
    space: ParamSpace,
    point: Point,
    settings: PBTSettings,
    rng: np.random.Generator,
    mutable: Callable[[str], bool] = is_hyperparameter,
) -> tuple[Point, list[str]]:
    """The point with every mutable parameter perturbed or resampled, and one log line per change."""
    new, log = dict(point), []
    for param in space.active(point):
        if not mutable(param.name):
            continue
        old = point[param.name]
        value, how = _explore_one(param, old, settings, rng)
        if value != old:
            new[param.name] = value
            log.append(f"{param.name}: {old} -> {value} ({how})")
    return new, log


def _explore_one(
    param: Param, old: Value, settings: PBTSettings, rng: np.random.Generator
) -> tuple[Value, str]:
    if rng.uniform() < settings.resample_probability:
        return sample_value(param, rng), "resampled"
    if isinstance(param, Categorical):
        i = param.choices.index(old) if old in param.choices else 0
        j = min(len(param.choices) - 1, max(0, i + (1 if rng.uniform() < 0.5 else -1)))
        return param.choices[j], "neighbouring choice"
    assert not isinstance(old, str)
    factor = settings.factors[int(rng.integers(2))]
    value = min(param.high, max(param.low, old * factor))
    if isinstance(param, Integer):
        step = 1 if param.log else param.step
        snapped = param.low + step * round((value - param.low) / step)
        return int(min(param.high, snapped)), f"x{factor:g}"
    return value, f"x{factor:g}"


def exploit_and_explore(
    space: ParamSpace, population: Sequence[Member], seed: int, step: int, settings: PBTSettings
) -> list[Exploit]:
    """One PBT round over the members with a score: the bottom quantile copies the top quantile."""
    ranked = sorted((m for m in population if m.score is not None), key=lambda m: (-(m.score or 0.0), m.name))
    cut = max(1, int(len(ranked) * settings.quantile)) if len(ranked) >= 2 else 0
    top, bottom = ranked[:cut], ranked[len(ranked) - cut :]
    out = []
    for position, member in enumerate(bottom):
        rng = rng_for(seed, step, salt=position)
        source = top[int(rng.integers(len(top)))]
        point, log = explore(space, source.point, settings, rng)
        header = f"{member.name} (score {member.score:g}) <- {source.name} (score {source.score:g})"
        out.append(Exploit(member.name, source.name, point, (header, *log)))
    return out
