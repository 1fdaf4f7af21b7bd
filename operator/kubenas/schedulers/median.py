"""The median stopping rule (Golovin et al., Google Vizier, KDD 2017).

After `graceEpochs`, a trial stops at epoch e when its best score so far is worse than the median,
over the other trials that reached epoch e (at least `minTrials` of them), of their mean score over
their first e epochs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean, median

from kubenas.schedulers.base import Continue, Decision, Scheduler, Stop, TrialCurve, others


@dataclass(frozen=True)
class MedianStopping(Scheduler):
    grace_epochs: int = 1
    min_trials: int = 3

    def decide(self, trial: TrialCurve, history: Sequence[TrialCurve]) -> Decision:
        e = trial.epochs
        if e <= self.grace_epochs:
            return Continue()
        peers = [fmean(t.scores[:e]) for t in others(trial, history) if t.epochs >= e]
        if len(peers) < self.min_trials:
            return Continue()
        threshold = median(peers)
        best = max(trial.scores)
        if best < threshold:
            return Stop(f"best {best:g} below the median running average {threshold:g} at epoch {e}")
        return Continue()
