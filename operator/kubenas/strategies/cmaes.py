"""CMA-ES (Hansen, 2016) on the unit-cube relaxation of the space, via the `cmaes` package.

Every parameter is one coordinate in [0, 1] (a categorical's value is the bin it falls in; inactive
parameters are ignored when decoding). The state is rebuilt each ask: a CMA started at the cube's
centre is told the successful trials in index order, `populationSize` at a time, then samples each new
index with a generator seeded from (seed, index). optuna's CmaEsSampler keeps its state on optuna's
own trial records, which kubenas trials do not carry, hence the direct use of the library it wraps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from kubenas_trainer.spec import CamelModel
from pydantic import Field

from kubenas.seeds import derive_seed
from kubenas.space.params import Point, from_unit_vector, unit_vector
from kubenas.strategies.searcher import Observation, Searcher, SearcherStrategy

if TYPE_CHECKING:
    from cmaes import CMA


class CMAESSettings(CamelModel):
    population_size: int | None = Field(
        default=None, ge=2, le=10000, description="Points per generation (default 4 + 3 ln(dimensions))."
    )
    sigma0: float = Field(default=0.3, gt=0.0, le=1.0, description="Initial step size in the unit cube.")


class CMAESSearcher(Searcher):
    Settings = CMAESSettings

    def optimizer(self, observations: Sequence[Observation], seed: int) -> CMA:
        from cmaes import CMA  # imported late: it pulls in scipy (seconds of start-up)

        settings = self.settings
        assert isinstance(settings, CMAESSettings)
        dims = max(2, len(self.space.params))
        cma = CMA(
            mean=np.full(dims, 0.5),
            sigma=settings.sigma0,
            bounds=np.array([[0.0, 1.0]] * dims),
            seed=seed,
            population_size=settings.population_size,
        )
        told: list[tuple[np.ndarray, float]] = []
        for obs in sorted(observations, key=lambda o: o.index):
            if obs.score is None:
                continue
            told.append((self._vector(obs.point, dims), -obs.score))  # CMA minimises
            if len(told) == cma.population_size:
                cma.tell(told)
                told = []
        return cma

    def _vector(self, point: Point, dims: int) -> np.ndarray:
        x = unit_vector(self.space, point)
        return np.pad(x, (0, dims - len(x)), constant_values=0.5)

    def propose(self, observations: Sequence[Observation], start: int, count: int) -> list[Point]:
        n = len(self.space.params)
        out = []
        for index in range(start, start + count):
            x = self.optimizer(observations, derive_seed(self.seed, index)).ask()
            out.append(from_unit_vector(self.space, x[:n]))
        return out


class CMAES(SearcherStrategy):
    name = "cmaes"
    searcher = CMAESSearcher
