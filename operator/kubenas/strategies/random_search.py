"""Random search: each trial index draws independently from its own seeded generator."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from kubenas_trainer.spec import Candidate

from kubenas.engine.records import TrialRecord
from kubenas.space import sample_candidate
from kubenas.strategies.base import Strategy, next_index


class RandomSearch(Strategy):
    name = "random"

    def ask(self, history: Sequence[TrialRecord], count: int) -> list[Candidate]:
        start = next_index(history)
        return [
            sample_candidate(self.space, np.random.default_rng([self.seed, index]))
            for index in range(start, start + count)
        ]
