"""Population Based Training (Jaderberg et al., 2017) in synchronous generations.

A population of `populationSize` members trains in segments of `interval` epochs. Trial index i is
member i % P's segment in generation i // P: generation 0 draws P fresh candidates and pauses them
after `interval` epochs; each later generation starts once the previous one has finished (paused,
succeeded, failed or stopped), ranks it on the objective at its last epoch, and proposes one trial
per member. A member in the bottom `quantile` (or without a score: failed, stopped) exploits: its new
trial starts from the checkpoint of a member drawn from the top `quantile`, with that member's
candidate explored (a numeric hyperparameter multiplied by one of `factors`, on its log scale where it
has one, clipped to its range, or with `resampleProbability` drawn afresh; a categorical one moves to a
neighbouring choice or is drawn afresh). The others continue their own checkpoint unchanged.

Only hyperparameters change, never the architecture: the weights are copied, so their shapes must
stay. Every proposal carries a readable note (who copies whom, with scores, and one line per change),
which the runner prints and the trial records. Synchronous generations keep PBT pure: the proposals
of a generation depend on the seed and the previous generation's recorded results only, so a
restarted controller proposes the same trials.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
from kubenas_trainer.spec import CamelModel, Candidate
from pydantic import Field, model_validator

from kubenas.api.errors import SpecError
from kubenas.api.status import TrialPhase
from kubenas.engine.records import TrialRecord
from kubenas.engine.score import Basis, score
from kubenas.seeds import rng_for
from kubenas.space.encoding import CandidateCodec
from kubenas.space.params import (
    Categorical,
    Integer,
    Param,
    ParamSpace,
    Point,
    Value,
    is_active,
    sample_value,
)
from kubenas.strategies.base import Proposal, Strategy


class PBTSettings(CamelModel):
    population_size: int = Field(default=4, ge=2, le=10000, description="Members trained side by side.")
    interval: int = Field(default=2, ge=1, le=10000, description="Epochs per generation (segment).")
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
    """A population member at a ready point; score None: it failed or was stopped (always replaced)."""

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
    """What PBT may change: hyperparameters, not the architecture (whose weights are copied), and not
    the epochs (PBT schedules those itself)."""
    return name.startswith("hyperparameters.") and name != "hyperparameters.epochs"


def _same(point: Point) -> Point:
    return point


def show(value: Value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def explore(
    space: ParamSpace,
    point: Point,
    settings: PBTSettings,
    rng: np.random.Generator,
    mutable: Callable[[str], bool] = is_hyperparameter,
    settle: Callable[[Point], Point] = _same,
) -> tuple[Point, list[str]]:
    """The point with every mutable parameter perturbed or resampled, and one log line per change.

    `settle` maps a point to what a trial will really run (e.g. through the candidate's rounding), so
    the log lists the changes that survive it, with their settled values. Conditions are read on the
    new values: a parameter a change switches off is dropped, one it switches on is drawn."""
    new: Point = {}
    how: dict[str, str] = {}
    for param in space.params:
        if not is_active(param, new):
            continue
        if param.name not in point:
            new[param.name], how[param.name] = sample_value(param, rng), "drawn: now active"
        elif mutable(param.name):
            new[param.name], how[param.name] = _explore_one(param, point[param.name], settings, rng)
        else:
            new[param.name] = point[param.name]
    new = settle(new)
    log = [
        f"{name}: {show(point[name]) if name in point else 'unset'} -> {show(new[name])} ({reason})"
        for name, reason in how.items()
        if name in new and new[name] != point.get(name)
    ]
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


def _described(member: Member) -> str:
    return f"{member.name} ({'no score' if member.score is None else f'score {member.score:g}'})"


def exploit_and_explore(
    space: ParamSpace,
    population: Sequence[Member],
    seed: int,
    step: int,
    settings: PBTSettings,
    settle: Callable[[Point], Point] = _same,
) -> list[Exploit]:
    """One PBT round: the bottom quantile of the scored members, and every member without a score,
    copies a member drawn from the top quantile. Nothing happens without a scored member to copy."""
    ranked = sorted((m for m in population if m.score is not None), key=lambda m: (-(m.score or 0.0), m.name))
    if not ranked:
        return []
    cut = max(1, int(len(ranked) * settings.quantile)) if len(ranked) >= 2 else 0
    top = ranked[: max(1, cut)]
    bottom = [*ranked[len(ranked) - cut :], *(m for m in population if m.score is None)]
    out = []
    for position, member in enumerate(bottom):
        rng = rng_for(seed, step, salt=position)
        source = top[int(rng.integers(len(top)))]
        point, log = explore(space, source.point, settings, rng, settle=settle)
        header = f"{_described(member)} <- {_described(source)}"
        out.append(Exploit(member.name, source.name, point, (header, *log)))
    return out


class PBT(Strategy):
    """Population Based Training in synchronous generations (see the module's docstring)."""

    name = "pbt"
    Settings = PBTSettings
    exhausted_reason = "ScheduleCompleted"
    continues_trials = True

    def setup(self) -> None:
        assert isinstance(self.settings, PBTSettings)
        self.pbt: PBTSettings = self.settings
        self.codec = CandidateCodec(self.space)
        self.size = self.pbt.population_size
        self.generations = math.ceil(self.epochs / self.pbt.interval)
        if self.space.hyperparameters.epochs is not None:
            raise SpecError(
                [
                    "spec.searchSpace.hyperparameters.epochs: strategy pbt schedules the epochs itself "
                    "(training.epochs in generations of interval epochs); leave epochs out of the space"
                ]
            )
        needed = self.size * self.generations
        if self.max_trials < needed:
            raise SpecError(
                [
                    f"spec.budget.maxTrials: strategy pbt needs populationSize x generations = "
                    f"{self.size} x {self.generations} = {needed} trials (maxTrials={self.max_trials}), "
                    "where generations = ceil(training.epochs / interval) = "
                    f"ceil({self.epochs} / {self.pbt.interval})"
                ]
            )

    @property
    def total(self) -> int:
        return self.size * self.generations

    def ask(self, history: Sequence[TrialRecord], count: int) -> list[Candidate]:
        return [p.candidate for p in self.propose(history, count)[0]]

    def propose(self, history: Sequence[TrialRecord], count: int) -> tuple[list[Proposal], bool]:
        """The next trials of the current generation, never beyond it: a generation starts once the
        previous one has finished. Done once the last generation has been proposed."""
        own = {t.index: t for t in history if t.index >= 0}  # warm-start trials do not take part
        start = 1 + max(own, default=-1)
        if start >= self.total:
            return [], True
        generation = start // self.size
        first = generation * self.size
        if count <= 0:
            return [], False
        previous = (
            [own.get(i) or self.missing(i) for i in range(first - self.size, first)] if generation else []
        )
        if any(t.phase in (TrialPhase.PENDING, TrialPhase.RUNNING) for t in previous):
            return [], False
        planned = self.generation(generation, previous)
        end = min(first + self.size, start + count)
        return planned[start - first : end - first], end >= self.total

    def generation(self, generation: int, previous: Sequence[TrialRecord]) -> list[Proposal]:
        """Every member's trial of one generation, from the previous generation's finished trials."""
        stop = min((generation + 1) * self.pbt.interval, self.epochs)
        if generation == 0 or not any(self.score(t) is not None for t in previous):
            why = (
                "a fresh draw" if generation == 0 else "no member has a score yet: a fresh draw from scratch"
            )
            return [
                Proposal(
                    self.fresh(generation * self.size + m),
                    stop_at_epoch=stop,
                    note=f"PBT generation {generation}, member {m}: {why}",
                )
                for m in range(self.size)
            ]
        members = [Member(t.name, self.codec.encode(t.candidate), self.score(t)) for t in previous]
        exploits = {
            e.target: e
            for e in exploit_and_explore(
                self.codec.space, members, self.seed, generation, self.pbt, settle=self.settle
            )
        }
        by_name = {t.name: t for t in previous}
        out = []
        for m, trial in enumerate(previous):
            head = f"PBT generation {generation}, member {m}: "
            exploit = exploits.get(trial.name)
            if exploit is None:
                note = f"{head}continues {trial.name} ({self.shown(trial)})"
                out.append(Proposal(trial.candidate, start_from=trial.name, stop_at_epoch=stop, note=note))
                continue
            source = by_name[exploit.source]
            changes = list(exploit.log[1:]) or ["no hyperparameter changed"]
            note = "\n".join(
                [
                    f"{head}{trial.name} ({self.shown(trial)}) is replaced by a copy of "
                    f"{source.name} ({self.shown(source)}), starting from its checkpoint",
                    *changes,
                ]
            )
            candidate = self.codec.decode(exploit.point)
            out.append(Proposal(candidate, start_from=source.name, stop_at_epoch=stop, note=note))
        return out

    def missing(self, index: int) -> TrialRecord:
        """A stand-in for a trial index the history lacks (the controller leaves no gaps): a failed
        member, so it is replaced rather than waited for."""
        return TrialRecord(
            f"(trial index {index}, not recorded)", index, 0, self.fresh(index), TrialPhase.FAILED
        )

    def fresh(self, index: int) -> Candidate:
        return self.codec.decode(self.codec.space.sample(rng_for(self.seed, index)))

    def settle(self, point: Point) -> Point:
        """The point as the trial will run it (the candidate's rounding applied)."""
        return self.codec.encode(self.codec.decode(point))

    def score(self, trial: TrialRecord) -> float | None:
        """The objective at the end of the trial's segment (paused) or its result (succeeded), signed
        so that higher is better; None when it failed or was stopped (always replaced)."""
        return score(trial, self.objective, Basis.SEGMENT)

    def shown(self, trial: TrialRecord) -> str:
        """The trial's objective as the user wrote it (not signed), or its phase when it has none."""
        if self.score(trial) is None:
            return f"{trial.phase.value}, no score"
        return f"{self.objective.metric} {trial.metrics[self.objective.metric]:.4g}"
