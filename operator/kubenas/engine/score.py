"""A trial's score: the one rule every strategy, scheduler, the Pareto front and status.best use.

A score is a metric signed so that higher is better (`MetricGoal.sign`), and only a finite value
counts: a NaN or infinite metric is a failure, not a score. Which phases count depends on what the
caller ranks (the `Basis`); which epochs count is the trial's own: the best epoch for a finished
trial, the last one for a paused or stopped trial (the state its checkpoint holds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum

from kubenas.api.experiment import MetricGoal
from kubenas.api.status import TrialPhase
from kubenas.engine.records import TrialRecord


class Basis(StrEnum):
    """Which trials have a score."""

    # Trained to the end: status.best, the Pareto front.
    RESULT = "result"
    # At the end of a segment whose checkpoint can go on (succeeded or paused): PBT, MIHA.
    SEGMENT = "segment"
    # Whatever fidelity it reached (succeeded, paused, or stopped early): samplers learn from all of
    # them, as optuna's TPE ranks pruned trials by their last intermediate value.
    REACHED = "reached"


PHASES: dict[Basis, tuple[TrialPhase, ...]] = {
    Basis.RESULT: (TrialPhase.SUCCEEDED,),
    Basis.SEGMENT: (TrialPhase.SUCCEEDED, TrialPhase.PAUSED),
    Basis.REACHED: (TrialPhase.SUCCEEDED, TrialPhase.PAUSED, TrialPhase.STOPPED),
}


def score(trial: TrialRecord, goal: MetricGoal, basis: Basis = Basis.REACHED) -> float | None:
    """The trial's goal.metric signed so that higher is better; None when it has none on `basis`."""
    if trial.phase not in PHASES[basis]:
        return None
    value = trial.metrics.get(goal.metric)
    if value is None or not math.isfinite(value):
        return None
    return goal.sign * float(value)


def value(trial: TrialRecord, goal: MetricGoal, basis: Basis = Basis.REACHED) -> float | None:
    """The same, as the user wrote the metric (not signed)."""
    signed = score(trial, goal, basis)
    return None if signed is None else goal.sign * signed


def score_vector(
    trial: TrialRecord, goals: Sequence[MetricGoal], basis: Basis = Basis.RESULT
) -> tuple[float, ...] | None:
    """One score per goal (multi-objective strategies); None unless the trial has all of them."""
    out = [score(trial, goal, basis) for goal in goals]
    return None if any(s is None for s in out) else tuple(s for s in out if s is not None)


def epoch_scores(trial: TrialRecord, objective: MetricGoal) -> tuple[float, ...]:
    """The experiment's objective after each epoch, signed, up to the first missing or non-finite one.

    From the live per-epoch metrics where the backend observes them, else from the curve the trainer
    reported at its last pause or end (a curve of the objective only); whichever covers more epochs.
    """
    values: Sequence[float | None] = [row.get(objective.metric) for row in trial.epoch_metrics]
    if len(trial.curve) > len(values):
        values = trial.curve
    out = []
    for v in values:
        if v is None or not math.isfinite(v):
            break
        out.append(objective.sign * v)
    return tuple(out)
