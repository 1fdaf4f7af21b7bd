"""Local search (White, Nolen, Zela & Hutter, "Local search is state of the art for NAS", UAI 2021).

After `nStartupTrials` random trials, each proposal is an unevaluated neighbour (one decision changed,
kubenas.space.neighbours) of the best trial whose neighbourhood is not yet explored, drawn at random.
That is first-improvement hill climbing rebuilt from the history alone: as soon as a neighbour scores
better than the current trial it is the best, and the climb moves on from it; once every neighbour of
the best has been tried (a local optimum) the search restarts from the best trial with unexplored
neighbours, and from a random point when none is left. Running and failed trials count as tried, so
parallel proposals take different neighbours. Seeded per trial index.
"""

from __future__ import annotations

from collections.abc import Sequence

from kubenas_trainer.spec import CamelModel
from pydantic import Field

from kubenas.seeds import rng_for
from kubenas.space.neighbours import Cell, Neighbourhoods
from kubenas.space.params import Point
from kubenas.strategies.searcher import Observation, Searcher, SearcherStrategy

RANDOM_TRIES = 64  # draws for a random point in an untried cell before settling for a tried one


class LocalSearchSettings(CamelModel):
    n_startup_trials: int = Field(
        default=10, ge=1, le=100000, description="Random trials before the climb starts from the best."
    )
    bins: int = Field(default=8, ge=2, le=256, description="Grid values a numeric range is cut into.")


class LocalSearchSearcher(Searcher):
    Settings = LocalSearchSettings

    def propose(self, observations: Sequence[Observation], start: int, count: int) -> list[Point]:
        settings = self.settings
        assert isinstance(settings, LocalSearchSettings)
        hoods = Neighbourhoods(self.space, settings.bins)
        tried: set[Cell] = {hoods.cell(o.point) for o in observations}
        ranked = sorted(
            (o for o in observations if o.score is not None), key=lambda o: (-(o.score or 0.0), o.index)
        )
        out: list[Point] = []
        for offset, index in enumerate(range(start, start + count)):
            point = None
            if len(observations) + offset >= settings.n_startup_trials:
                point = self._climb(hoods, ranked, tried, index)
            if point is None:
                point = self._random(hoods, tried, index)
            tried.add(hoods.cell(point))
            out.append(point)
        return out

    def _climb(
        self, hoods: Neighbourhoods, ranked: Sequence[Observation], tried: set[Cell], index: int
    ) -> Point | None:
        """An untried neighbour of the best trial that has one (None: every neighbourhood explored)."""
        for obs in ranked:
            # A trial's neighbourhood is fixed: newly active parameters are drawn from its own seed.
            neighbours = hoods.neighbours(obs.point, rng_for(self.seed, obs.index, salt=1))
            fresh = [p for p in neighbours if hoods.cell(p) not in tried]
            if fresh:
                return fresh[int(rng_for(self.seed, index, salt=2).integers(len(fresh)))]
        return None

    def _random(self, hoods: Neighbourhoods, tried: set[Cell], index: int) -> Point:
        rng = rng_for(self.seed, index)
        point = self.space.sample(rng)
        for _ in range(RANDOM_TRIES):
            if hoods.cell(point) not in tried:
                break
            point = self.space.sample(rng)
        return point


class LocalSearch(SearcherStrategy):
    name = "local-search"
    searcher = LocalSearchSearcher
