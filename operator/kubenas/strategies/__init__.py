"""Search strategies behind one interface, looked up by name."""

from __future__ import annotations

from kubenas.api.errors import SpecError
from kubenas.api.experiment import NASExperimentSpec
from kubenas.strategies.bananas import Bananas
from kubenas.strategies.base import Strategy
from kubenas.strategies.bohb import BOHB
from kubenas.strategies.cmaes import CMAES
from kubenas.strategies.evolution import Evolution
from kubenas.strategies.gp import GaussianProcess
from kubenas.strategies.grid import GridSearch
from kubenas.strategies.local_search import LocalSearch
from kubenas.strategies.miha import MIHA
from kubenas.strategies.nsga2 import NSGA2
from kubenas.strategies.pbt import PBT
from kubenas.strategies.random_search import RandomSearch
from kubenas.strategies.reinforce import Reinforce
from kubenas.strategies.tpe import TPE

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (
        RandomSearch,
        GridSearch,
        Evolution,
        Reinforce,
        TPE,
        CMAES,
        GaussianProcess,
        LocalSearch,
        Bananas,
        BOHB,
        NSGA2,
        PBT,
        MIHA,
    )
}


def make_strategy(spec: NASExperimentSpec) -> Strategy:
    """The spec's strategy, or SpecError naming spec.strategy.name / .settings."""
    cls = STRATEGIES.get(spec.strategy.name)
    if cls is None:
        known = ", ".join(STRATEGIES)
        name = spec.strategy.name
        raise SpecError([f"spec.strategy.name: unknown strategy {name!r}; must be one of {known}"])
    if cls.continues_trials and spec.early_stopping.rule != "none":
        raise SpecError(
            [
                f"spec.earlyStopping.rule: strategy {cls.name} schedules its trials' epochs itself; "
                f"earlyStopping.rule must be none (rule={spec.early_stopping.rule})"
            ]
        )
    return cls(
        spec.search_space,
        spec.objective,
        spec.strategy.seed,
        spec.strategy.settings,
        epochs=spec.training.epochs,
        max_trials=spec.budget.max_trials,
    )


__all__ = ["STRATEGIES", "Strategy", "make_strategy"]
