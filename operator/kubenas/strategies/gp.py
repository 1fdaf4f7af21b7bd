"""Gaussian-process Bayesian optimisation with expected improvement, numpy only.

optuna's GPSampler needs torch, which the operator must not import; this is the same idea, small:
a Matern-5/2 GP on a feature vector of the point (one-hot categoricals, unit-scaled numbers, zeros
for inactive parameters), its length scale and noise picked by marginal likelihood from a small grid,
and EI maximised over random points plus mutations of the best ones. Running trials (and earlier
proposals of the same ask) count as constant liars at the worst observed score, so parallel
proposals spread out. Rebuilt from the history on every ask; seeded per trial index.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from kubenas_trainer.spec import CamelModel
from pydantic import Field

from kubenas.seeds import rng_for
from kubenas.space.mutation import mutate
from kubenas.space.params import Categorical, ParamSpace, Point, Value, key_of, to_unit
from kubenas.strategies.searcher import Observation, Searcher, SearcherStrategy

LENGTH_SCALES = (0.1, 0.2, 0.4, 0.8, 1.6)
NOISES = (1e-4, 1e-2, 1e-1)


class GPSettings(CamelModel):
    n_startup_trials: int = Field(default=10, ge=1, le=100000, description="Random trials before the GP.")
    candidates: int = Field(default=512, ge=16, le=100000, description="Points scored by EI per proposal.")


def features(space: ParamSpace, point: Mapping[str, Value]) -> np.ndarray:
    out: list[float] = []
    for param in space.params:
        value = point.get(param.name)
        if isinstance(param, Categorical):
            out += [math.sqrt(0.5) * float(value == c) for c in param.choices]
        else:
            out.append(0.0 if value is None or isinstance(value, str) else to_unit(param, value))
    return np.array(out)


def matern52(a: np.ndarray, b: np.ndarray, length: float) -> np.ndarray:
    d2 = np.maximum(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1), 0.0)
    r = np.sqrt(5.0 * d2) / length
    return np.asarray((1.0 + r + r * r / 3.0) * np.exp(-r))


class GP:
    """Exact GP regression on standardised targets, hyperparameters from a grid by likelihood."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x = x
        self.mean, self.scale = float(y.mean()), float(y.std()) or 1.0
        z = (y - self.mean) / self.scale
        best: tuple[float, float, np.ndarray, np.ndarray] | None = None
        for length in LENGTH_SCALES:
            k = matern52(x, x, length)
            for noise in NOISES:
                chol = np.linalg.cholesky(k + noise * np.eye(len(x)))
                alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, z))
                evidence = -0.5 * float(z @ alpha) - float(np.log(np.diag(chol)).sum())
                if best is None or evidence > best[0]:
                    best = (evidence, length, chol, alpha)
        assert best is not None
        _, self.length, self.chol, self.alpha = best

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ks = matern52(x, self.x, self.length)
        mu = ks @ self.alpha
        v = np.linalg.solve(self.chol, ks.T)
        sd = np.sqrt(np.maximum(1.0 - (v * v).sum(0), 1e-12))
        return mu * self.scale + self.mean, sd * self.scale


def expected_improvement(mu: np.ndarray, sd: np.ndarray, best: float) -> np.ndarray:
    z = (mu - best) / sd
    cdf = 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return np.asarray((mu - best) * cdf + sd * pdf)


class GPSearcher(Searcher):
    Settings = GPSettings

    def propose(self, observations: Sequence[Observation], start: int, count: int) -> list[Point]:
        settings = self.settings
        assert isinstance(settings, GPSettings)
        scored = [o for o in observations if o.score is not None]
        liars = [o.point for o in observations if o.pending]
        out: list[Point] = []
        for index in range(start, start + count):
            rng = rng_for(self.seed, index)
            if len(scored) < settings.n_startup_trials:
                out.append(self.space.sample(rng))
            else:
                out.append(self._maximise_ei(scored, [*liars, *out], rng, settings.candidates))
        return out

    def _maximise_ei(
        self, scored: Sequence[Observation], liars: Sequence[Point], rng: np.random.Generator, n: int
    ) -> Point:
        scores = np.array([o.score for o in scored], dtype=float)
        points = [o.point for o in scored] + list(liars)
        y = np.concatenate([scores, np.full(len(liars), scores.min())])
        gp = GP(np.array([features(self.space, p) for p in points]), y)
        top = [scored[int(i)].point for i in np.argsort(-scores)[:5]]
        pool = [self.space.sample(rng) for _ in range(n // 2)]
        pool += [mutate(self.space, top[k % len(top)], rng) for k in range(n - n // 2)]
        seen = {key_of(p) for p in points}
        pool = [p for p in pool if key_of(p) not in seen] or pool
        mu, sd = gp.predict(np.array([features(self.space, p) for p in pool]))
        return pool[int(np.argmax(expected_improvement(mu, sd, float(scores.max()))))]


class GaussianProcess(SearcherStrategy):
    name = "gp"
    searcher = GPSearcher
