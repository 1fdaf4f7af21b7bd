"""Seeds: every random choice in the control plane derives from the experiment's seed and a position.

Deriving instead of drawing makes a restarted controller repeat exactly what it would have done: the
seed of trial i, and every generator a strategy uses for trial i, are functions of (seed, i) only.
"""

from __future__ import annotations

import numpy as np


def derive_seed(*keys: int) -> int:
    """A 31-bit seed that is a function of the keys only (e.g. the experiment seed and a trial index)."""
    return int(np.random.SeedSequence([abs(k) for k in keys]).generate_state(1)[0] >> 1)


def trial_seed(experiment_seed: int, index: int) -> int:
    """A trial's own seed (its weights and batch order; the data split is the experiment's)."""
    return derive_seed(experiment_seed, index)


def rng_for(seed: int, index: int, salt: int = 0) -> np.random.Generator:
    """The generator a strategy uses for trial `index` (`salt` tells several draws for one trial apart)."""
    return np.random.default_rng([seed, abs(index), salt])
