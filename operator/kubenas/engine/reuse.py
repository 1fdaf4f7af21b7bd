"""Reusing results: a cache of evaluated candidates, and warm starts from another experiment's trials.

Both are pure helpers for the controller core:

- ResultCache.lookup(candidate) finds a succeeded trial whose candidate has the same canonical key
  (Candidate.key(): architecture + hyperparameters); the engine then records the new trial as
  succeeded with that trial's metrics instead of training it again.
- warm_start(source, trials) turns another experiment's succeeded trials into history records with
  negative indices (-n .. -1, oldest first), so strategies learn from them while this experiment's
  own indices, names and seeds stay 0, 1, 2 ...: pass `[*warm, *own]` to Strategy.ask and to
  ResultCache, but count only the own trials against the budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from kubenas_trainer.spec import Candidate

from kubenas.api.status import TrialPhase
from kubenas.engine.records import TrialRecord


class ResultCache:
    """The earliest succeeded trial of every evaluated candidate, by canonical key."""

    def __init__(self, trials: Iterable[TrialRecord]) -> None:
        self._by_key: dict[str, TrialRecord] = {}
        for trial in sorted(trials, key=lambda t: t.index):
            if trial.phase is TrialPhase.SUCCEEDED:
                self._by_key.setdefault(trial.candidate.key(), trial)

    def __len__(self) -> int:
        return len(self._by_key)

    def lookup(self, candidate: Candidate) -> TrialRecord | None:
        """The trial whose result this candidate can reuse, if any."""
        return self._by_key.get(candidate.key())


def warm_start(source: str, trials: Sequence[TrialRecord]) -> list[TrialRecord]:
    """Another experiment's succeeded trials as history records with indices -n .. -1."""
    done = sorted((t for t in trials if t.phase is TrialPhase.SUCCEEDED), key=lambda t: t.index)
    return [
        replace(trial, name=f"{source}/{trial.name}", index=position - len(done), launched=True)
        for position, trial in enumerate(done)
    ]
