"""Predictor-guided Bayesian optimisation (BANANAS: White, Neiswanger & Savani, AAAI 2021).

A predictor is an ensemble of small neural networks (scikit-learn's MLPRegressor: one hidden layer,
each from its own initial weights) fitted to the z-scored results on the encoded candidate: one-hot
categoricals, unit-scaled numbers, zeros for inactive parameters (the GP's features). The members'
mean and spread stand for the prediction and its uncertainty. Each proposal scores a pool of
candidates, mutations of the best trials (one decision changed, or two for a `farFraction` of them)
plus some random points, none tried before, and takes the best by independent Thompson sampling (one
draw from N(mean, spread) per candidate) or by UCB (mean + ucbBeta x spread).

The ensemble is refitted every `refitEvery` results, on the first results in trial-index order (a
function of the history, so a restarted controller fits the same one); fits are cached by their data.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Literal

import numpy as np
from kubenas_trainer.spec import CamelModel
from pydantic import Field
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor

from kubenas.seeds import rng_for
from kubenas.space.mutation import mutate
from kubenas.space.params import Categorical, ParamSpace, Point, Value, key_of, to_unit
from kubenas.strategies.searcher import Observation, Searcher, SearcherStrategy

Key = tuple[tuple[str, Value], ...]


class BananasSettings(CamelModel):
    n_startup_trials: int = Field(
        default=10, ge=2, le=100000, description="Random trials before the predictor."
    )
    ensemble_size: int = Field(default=5, ge=2, le=100, description="Networks in the ensemble.")
    hidden_units: int = Field(default=16, ge=1, le=4096, description="Width of each network's hidden layer.")
    refit_every: int = Field(
        default=10, ge=1, le=1000, description="Results between two fits of the ensemble."
    )
    candidates: int = Field(default=200, ge=8, le=100000, description="Candidates scored per proposal.")
    parents: int = Field(default=10, ge=1, le=1000, description="Best trials whose mutations are candidates.")
    random_fraction: float = Field(
        default=0.2, ge=0.0, le=1.0, description="Share of the candidates drawn at random, not mutated."
    )
    acquisition: Literal["its", "ucb"] = Field(
        default="ucb", description="its: independent Thompson sampling; ucb: mean + ucbBeta x spread."
    )
    ucb_beta: float = Field(default=0.5, ge=0.0, le=100.0, description="Weight of the spread in UCB.")
    steps: int = Field(default=200, ge=1, le=100000, description="L-BFGS iterations of each fit, at most.")
    far_fraction: float = Field(
        default=0.3, ge=0.0, le=1.0, description="Share of the mutations that change two decisions, not one."
    )


class Ensemble:
    """scikit-learn MLPs (one ReLU hidden layer, each from its own initial weights, L-BFGS with weight
    decay) on standardised targets; predict() gives the members' mean and spread in the targets' units."""

    def __init__(
        self, x: np.ndarray, y: np.ndarray, size: int, hidden: int, seed: int, steps: int = 200
    ) -> None:
        self.mean, self.scale = float(y.mean()), float(y.std()) or 1.0
        z = (y - self.mean) / self.scale
        with warnings.catch_warnings():  # a fit that stops at `steps` iterations is what was asked for
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.members = [
                MLPRegressor(
                    hidden_layer_sizes=(hidden,),
                    activation="relu",
                    solver="lbfgs",
                    alpha=1e-2,
                    max_iter=steps,
                    random_state=seed + member,
                ).fit(x, z)
                for member in range(size)
            ]

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        predictions = np.stack([member.predict(x) for member in self.members])
        return predictions.mean(0) * self.scale + self.mean, predictions.std(0) * self.scale


@lru_cache(maxsize=8)
def _fit(
    x: bytes, shape: tuple[int, int], y: bytes, size: int, hidden: int, seed: int, steps: int
) -> Ensemble:
    """A cached fit: the benchmark and the controller ask again with the same data between refits."""
    return Ensemble(
        np.frombuffer(x).reshape(shape), np.frombuffer(y), size=size, hidden=hidden, seed=seed, steps=steps
    )


def encode(space: ParamSpace, points: Sequence[Mapping[str, Value]]) -> np.ndarray:
    """gp.features of many points at once (the pool's encoding was most of a proposal's time)."""
    width = sum(len(p.choices) if isinstance(p, Categorical) else 1 for p in space.params)
    out = np.zeros((len(points), width))
    column = 0
    for param in space.params:
        if isinstance(param, Categorical):
            index = {c: k for k, c in enumerate(param.choices)}
            for row, point in enumerate(points):
                k = index.get(point.get(param.name))  # type: ignore[arg-type]
                if k is not None:
                    out[row, column + k] = math.sqrt(0.5)
            column += len(param.choices)
        else:
            for row, point in enumerate(points):
                value = point.get(param.name)
                if value is not None and not isinstance(value, str):
                    out[row, column] = to_unit(param, value)
            column += 1
    return out


def fit_ensemble(
    space: ParamSpace, data: Sequence[Observation], settings: BananasSettings, seed: int
) -> Ensemble:
    x = encode(space, [o.point for o in data])
    y = np.array([o.score for o in data], dtype=float)
    return _fit(
        x.tobytes(), x.shape, y.tobytes(), settings.ensemble_size, settings.hidden_units, seed, settings.steps
    )


class BananasSearcher(Searcher):
    Settings = BananasSettings

    def propose(self, observations: Sequence[Observation], start: int, count: int) -> list[Point]:
        settings = self.settings
        assert isinstance(settings, BananasSettings)
        scored = sorted((o for o in observations if o.score is not None), key=lambda o: o.index)
        tried: set[Key] = {key_of(o.point) for o in observations}
        out: list[Point] = []
        for offset, index in enumerate(range(start, start + count)):
            rng = rng_for(self.seed, index)
            if (
                len(scored) < settings.n_startup_trials
                or len(observations) + offset < settings.n_startup_trials
            ):
                point = self.space.sample(rng)
            else:
                used = len(scored) - len(scored) % settings.refit_every
                ensemble = fit_ensemble(
                    self.space, scored[: max(used, settings.n_startup_trials)], settings, self.seed
                )
                point = self._acquire(ensemble, scored, tried, rng)
            tried.add(key_of(point))
            out.append(point)
        return out

    def _pool(self, scored: Sequence[Observation], tried: set[Key], rng: np.random.Generator) -> list[Point]:
        """Mutations of the best trials and random points, each once, none tried before."""
        settings = self.settings
        assert isinstance(settings, BananasSettings)
        best = sorted(scored, key=lambda o: (-(o.score or 0.0), o.index))[: settings.parents]
        randoms = round(settings.candidates * settings.random_fraction)
        mutations = settings.candidates - randoms
        far = round(mutations * settings.far_fraction)
        pool = [mutate(self.space, best[k % len(best)].point, rng) for k in range(mutations)]
        pool[:far] = [mutate(self.space, p, rng) for p in pool[:far]]
        pool += [self.space.sample(rng) for _ in range(randoms)]
        unique = {key_of(p): p for p in pool if key_of(p) not in tried}
        return list(unique.values()) or [self.space.sample(rng)]

    def _acquire(
        self, ensemble: Ensemble, scored: Sequence[Observation], tried: set[Key], rng: np.random.Generator
    ) -> Point:
        settings = self.settings
        assert isinstance(settings, BananasSettings)
        pool = self._pool(scored, tried, rng)
        mean, spread = ensemble.predict(encode(self.space, pool))
        if settings.acquisition == "its":
            value = rng.normal(mean, spread)
        else:
            value = mean + settings.ucb_beta * spread
        return pool[int(np.argmax(value))]


class Bananas(SearcherStrategy):
    name = "bananas"
    searcher = BananasSearcher
