"""BOHB (Falkner, Klein & Hutter, ICML 2018): a TPE model on top of Hyperband's multi-fidelity.

Run it with `earlyStopping.rule: hyperband` (or asha): the scheduler decides who trains how long, this
strategy decides what to try. Its model is fitted on one fidelity only: the most epochs that at least
`minPoints` trials have reached, each trial scored by its objective at exactly that epoch (its recorded
per-epoch curve), so results at different budgets are never mixed. Until some fidelity has that many
trials, and for a `randomFraction` of the proposals after, candidates are drawn at random (as in the
paper, which keeps a third random). Trials whose results came without a curve count at full fidelity;
so without early stopping this is multivariate TPE with a random share. Running trials are constant
liars, as in `tpe`. Seeded per trial index.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kubenas_trainer.spec import CamelModel
from pydantic import Field

from kubenas.seeds import rng_for
from kubenas.space.params import Point
from kubenas.strategies.searcher import Observation, SearcherStrategy
from kubenas.strategies.tpe import OptunaSearcher

if TYPE_CHECKING:
    import optuna

FULL = math.inf  # the fidelity of a result reported without a per-epoch curve


class BOHBSettings(CamelModel):
    min_points: int | None = Field(
        default=None,
        ge=2,
        le=100000,
        description="Trials a fidelity needs before the model uses it (default: parameters + 2).",
    )
    random_fraction: float = Field(
        default=1 / 3, ge=0.0, le=1.0, description="Share of proposals drawn at random once the model runs."
    )


def fidelity(obs: Observation) -> float:
    return float(len(obs.curve)) if obs.curve else FULL


def at(obs: Observation, epochs: float) -> float | None:
    """The trial's score after `epochs` epochs (its result, where it has no curve)."""
    if epochs == FULL or not obs.curve:
        return obs.score
    return obs.curve[int(epochs) - 1]


def model_fidelity(observations: Sequence[Observation], min_points: int) -> float | None:
    """The most epochs that at least `min_points` trials have a score at; None when no fidelity has."""
    reached = {fidelity(o) for o in observations if o.score is not None or o.curve}
    for epochs in sorted(reached, reverse=True):
        if sum(fidelity(o) >= epochs and at(o, epochs) is not None for o in observations) >= min_points:
            return epochs
    return None


def at_fidelity(observations: Sequence[Observation], epochs: float) -> list[Observation]:
    """The observations as the model sees them: scored at `epochs`, or running (pending)."""
    out = []
    for o in observations:
        value = at(o, epochs) if fidelity(o) >= epochs else None
        if value is not None:
            out.append(Observation(o.index, o.point, value))
        elif o.pending:
            out.append(Observation(o.index, o.point, pending=True))
    return out


class BOHBSearcher(OptunaSearcher):
    Settings = BOHBSettings

    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                n_startup_trials=0, multivariate=True, group=True, constant_liar=True, seed=seed
            )

    def propose(self, observations: Sequence[Observation], start: int, count: int) -> list[Point]:
        settings = self.settings
        assert isinstance(settings, BOHBSettings)
        min_points = settings.min_points or len(self.space.params) + 2
        epochs = model_fidelity(observations, min_points)
        model = [] if epochs is None else at_fidelity(observations, epochs)
        out: list[Point] = []
        for index in range(start, start + count):
            rng = rng_for(self.seed, index)
            if epochs is None or rng.uniform() < settings.random_fraction:
                out.append(self.space.sample(rng))
            else:
                pending = [Observation(-1 - k, p, pending=True) for k, p in enumerate(out)]
                (point,) = super().propose([*model, *pending], index, 1)
                out.append(point)
        return out


class BOHB(SearcherStrategy):
    name = "bohb"
    searcher = BOHBSearcher
