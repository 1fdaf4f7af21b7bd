"""Tree-structured Parzen Estimator through optuna's TPESampler in ask-and-tell mode.

Every ask rebuilds an in-memory study from the history (succeeded trials complete, failed ones failed,
pending ones running), then asks one trial per new index with a sampler seeded from (seed, index).
Conditional parameters are define-by-run: layer i's parameters are suggested only when count > i,
and a type-specific one (kernelSize, pooling, bidirectional) only when layer i's type takes it.
Running trials are told to TPE as a constant liar, so parallel proposals spread out.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from kubenas_trainer.spec import CamelModel
from pydantic import Field

from kubenas.seeds import derive_seed
from kubenas.space.params import Categorical, Integer, Param, ParamSpace, Point, Value, is_active
from kubenas.strategies.searcher import Observation, Searcher, SearcherStrategy

if TYPE_CHECKING:  # optuna is imported when first used: it takes a second to import
    import optuna
    from optuna.distributions import BaseDistribution


class TPESettings(CamelModel):
    n_startup_trials: int = Field(default=10, ge=0, le=100000, description="Random trials before TPE.")
    multivariate: bool = Field(default=True, description="Model the parameters jointly (grouped).")


def distribution(param: Param) -> BaseDistribution:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(param, Categorical):
        return CategoricalDistribution(param.choices)
    if isinstance(param, Integer):
        return IntDistribution(param.low, param.high, log=param.log, step=1 if param.log else param.step)
    return FloatDistribution(param.low, param.high, log=param.log)


def suggest(trial: optuna.Trial, space: ParamSpace) -> Point:
    """Define-by-run: suggest the active parameters in order."""
    point: Point = {}
    for param in space.params:
        if not is_active(param, point):
            continue
        value: Value
        if isinstance(param, Categorical):
            chosen = trial.suggest_categorical(param.name, param.choices)
            assert chosen is not None
            value = chosen
        elif isinstance(param, Integer):
            step = 1 if param.log else param.step
            value = trial.suggest_int(param.name, param.low, param.high, step=step, log=param.log)
        else:
            value = trial.suggest_float(param.name, param.low, param.high, log=param.log)
        point[param.name] = value
    return point


def study_from(space: ParamSpace, observations: Sequence[Observation]) -> optuna.Study:
    """A maximising in-memory study holding the observations that lie in the space."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for obs in sorted(observations, key=lambda o: o.index):
        if not space.contains(obs.point):
            continue
        params: Mapping[str, Value] = obs.point
        distributions = {p.name: distribution(p) for p in space.active(params)}
        if obs.score is not None:
            state, value = TrialState.COMPLETE, obs.score
        else:
            state, value = (TrialState.RUNNING if obs.pending else TrialState.FAIL), None
        study.add_trial(
            optuna.trial.create_trial(
                params=dict(params), distributions=distributions, value=value, state=state
            )
        )
    return study


class OptunaSearcher(Searcher):
    """Rebuild the study, then ask with a sampler seeded per trial index."""

    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        raise NotImplementedError

    def propose(self, observations: Sequence[Observation], start: int, count: int) -> list[Point]:
        import optuna

        study = study_from(self.space, observations)
        out = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            for index in range(start, start + count):
                study.sampler = self.sampler(derive_seed(self.seed, index))
                out.append(suggest(study.ask(), self.space))  # stays RUNNING: later asks see it
        return out


class TPESearcher(OptunaSearcher):
    Settings = TPESettings

    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        import optuna

        settings = self.settings
        assert isinstance(settings, TPESettings)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                n_startup_trials=settings.n_startup_trials,
                multivariate=settings.multivariate,
                group=settings.multivariate,
                constant_liar=True,
                seed=seed,
            )


class TPE(SearcherStrategy):
    name = "tpe"
    searcher = TPESearcher
