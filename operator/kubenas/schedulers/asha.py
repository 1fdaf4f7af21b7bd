"""Asynchronous successive halving (ASHA, Li et al., MLSys 2020) and asynchronous Hyperband.

Rungs sit at minEpochs * eta^k epochs (below maxEpochs). A trial reaching a rung goes on only if its
score there is among the best floor(n / eta) of the n trials that have reached that rung so far;
otherwise it stops (pauses) at the rung, and is promoted later, from its checkpoint, once enough
trials have arrived for it to rank in that top fraction. The first trials at a rung therefore pause
until others catch up, as in the paper.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kubenas.schedulers.base import Continue, Decision, Promote, Scheduler, Stop, TrialCurve, others


@dataclass(frozen=True)
class Bracket:
    """One successive-halving bracket: its rungs, and the rule for leaving one."""

    min_epochs: int
    max_epochs: int
    eta: int

    def __post_init__(self) -> None:
        if self.eta < 2:
            raise ValueError(f"eta must be >= 2 (eta={self.eta})")
        if not 1 <= self.min_epochs <= self.max_epochs:
            raise ValueError(
                f"minEpochs must lie in [1, maxEpochs] "
                f"(minEpochs={self.min_epochs}, maxEpochs={self.max_epochs})"
            )

    @property
    def rungs(self) -> list[int]:
        out, r = [], self.min_epochs
        while r < self.max_epochs:
            out.append(r)
            r *= self.eta
        return out

    def next_rung(self, epochs: int) -> int:
        return next((r for r in self.rungs if r > epochs), self.max_epochs)

    def in_top(self, trial: TrialCurve, rung: int, history: Sequence[TrialCurve]) -> bool:
        """Whether the trial's score at the rung is among the best floor(n / eta) there."""
        value = trial.scores[rung - 1]
        rivals = [t.scores[rung - 1] for t in others(trial, history) if t.epochs >= rung]
        keep = (len(rivals) + 1) // self.eta
        better = sum(v > value for v in rivals)
        return better < keep

    def decide(self, trial: TrialCurve, history: Sequence[TrialCurve]) -> Decision:
        epochs = trial.epochs
        if epochs >= self.max_epochs:
            return Stop("maxEpochs reached")
        if epochs not in self.rungs:
            return Continue() if not trial.paused else Stop("paused between rungs")
        if self.in_top(trial, epochs, history):
            target = self.next_rung(epochs)
            why = f"top 1/{self.eta} at rung {epochs}"
            return Promote(target, why) if trial.paused else Continue()
        return Stop(f"not in the top 1/{self.eta} at rung {epochs} (yet)")


@dataclass(frozen=True)
class ASHA(Scheduler):
    min_epochs: int = 1
    max_epochs: int = 27
    eta: int = 3

    def decide(self, trial: TrialCurve, history: Sequence[TrialCurve]) -> Decision:
        return Bracket(self.min_epochs, self.max_epochs, self.eta).decide(trial, history)


@dataclass(frozen=True)
class Hyperband(Scheduler):
    """Asynchronous Hyperband: trial i runs in bracket i mod s_max+1, whose first rung is
    minEpochs * eta^s; each bracket is an ASHA among its own trials."""

    min_epochs: int = 1
    max_epochs: int = 27
    eta: int = 3

    def brackets(self) -> list[Bracket]:
        """Brackets s = 0 .. s_max, where s_max = floor(log_eta(maxEpochs / minEpochs))."""
        firsts = [self.min_epochs, *Bracket(self.min_epochs, self.max_epochs, self.eta).rungs[1:]]
        if firsts[-1] * self.eta == self.max_epochs:
            firsts.append(self.max_epochs)  # the bracket that trains every trial to the end
        return [Bracket(first, self.max_epochs, self.eta) for first in firsts]

    def bracket_of(self, trial: TrialCurve) -> int:
        return trial.index % len(self.brackets())

    def decide(self, trial: TrialCurve, history: Sequence[TrialCurve]) -> Decision:
        k = self.bracket_of(trial)
        same = [t for t in history if self.bracket_of(t) == k]
        return self.brackets()[k].decide(trial, same)
