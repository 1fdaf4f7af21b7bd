"""Multi-fidelity in the controller core: where ASHA / Hyperband pause trials, and whom they promote.

A trial trains up to its next rung (the trainer's stopAtEpoch) and pauses there with its checkpoint.
Its rung is a function of its epochs so far, so a restarted controller relaunches an interrupted trial
to the same rung. A paused trial is promoted, i.e. continued from its checkpoint to the next rung,
once it ranks in the top 1/eta of its rung (kubenas.schedulers.asha). Promotions go before new trials,
highest rung first, as in the ASHA paper.

ASHA pauses the first arrivals at a rung until enough others catch up. When no new trial can start
and none is running, nobody will catch up: then the best paused trial of the highest rung is promoted
anyway, so that at least one candidate is trained for the full budget.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from kubenas.api.experiment import NASExperimentSpec
from kubenas.api.status import TrialPhase
from kubenas.engine.records import TrialRecord
from kubenas.engine.score import epoch_scores
from kubenas.schedulers import ASHA, Bracket, Hyperband, Promote, TrialCurve


def curve_of(spec: NASExperimentSpec, trial: TrialRecord) -> TrialCurve:
    """What a scheduler sees of the trial."""
    return TrialCurve(
        trial.name, trial.index, epoch_scores(trial, spec.objective), paused=trial.phase is TrialPhase.PAUSED
    )


class Fidelity:
    """The spec's ASHA or Hyperband, or nothing (every trial trains all its epochs at once)."""

    def __init__(self, spec: NASExperimentSpec) -> None:
        self.spec = spec
        rule = spec.early_stopping
        self.scheduler: ASHA | Hyperband | None = None
        if rule.rule == "asha":
            self.scheduler = ASHA(rule.min_epochs, spec.training.epochs, rule.reduction_factor)
        elif rule.rule == "hyperband":
            self.scheduler = Hyperband(rule.min_epochs, spec.training.epochs, rule.reduction_factor)

    def bracket(self, index: int) -> Bracket | None:
        if isinstance(self.scheduler, ASHA):
            s = self.scheduler
            return Bracket(s.min_epochs, s.max_epochs, s.eta)
        if isinstance(self.scheduler, Hyperband):
            brackets = self.scheduler.brackets()
            return brackets[index % len(brackets)]
        return None

    def stop_at(self, trial: TrialRecord | None, index: int) -> int | None:
        """The rung a (new or continued) trial trains up to; None: to its last epoch."""
        bracket = self.bracket(index)
        if bracket is None:
            return None
        done = 0 if trial is None else len(epoch_scores(trial, self.spec.objective))
        rung = bracket.next_rung(done)
        return rung if rung < bracket.max_epochs else None

    def promotions(self, trials: Sequence[TrialRecord], idle: bool) -> list[TrialRecord]:
        """Paused trials to continue, in order; `idle`: no trial runs and no new one can start."""
        if self.scheduler is None:
            return []
        curves = {t.name: curve_of(self.spec, t) for t in trials}
        history = [c for c in curves.values() if c.epochs]
        paused = [t for t in trials if t.phase is TrialPhase.PAUSED]
        chosen = [t for t in paused if isinstance(self.scheduler.decide(curves[t.name], history), Promote)]
        if not chosen and idle and paused and not any(t.phase is TrialPhase.SUCCEEDED for t in trials):

            def leader(t: TrialRecord) -> tuple[int, float, int]:
                scores = curves[t.name].scores
                return len(scores), scores[-1] if scores else -math.inf, -t.index

            chosen = [max(paused, key=leader)]
        return sorted(chosen, key=lambda t: (-curves[t.name].epochs, t.index))
