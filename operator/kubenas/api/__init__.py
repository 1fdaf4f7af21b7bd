"""Pydantic models of the custom resources: the single source of truth (crds/ is generated from them)."""

from kubenas.api.errors import SpecError, format_validation_error
from kubenas.api.experiment import (
    API_VERSION,
    GROUP,
    VERSION,
    Budget,
    NASExperiment,
    NASExperimentSpec,
    Objective,
    StrategySpec,
    TrialTemplate,
)
from kubenas.api.space import FloatDomain, IntDomain, SearchSpace
from kubenas.api.status import (
    BestTrial,
    Condition,
    ExperimentPhase,
    NASExperimentStatus,
    NASTrialSpec,
    NASTrialStatus,
    TrialPhase,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "BestTrial",
    "Budget",
    "Condition",
    "ExperimentPhase",
    "FloatDomain",
    "IntDomain",
    "NASExperiment",
    "NASExperimentSpec",
    "NASExperimentStatus",
    "NASTrialSpec",
    "NASTrialStatus",
    "Objective",
    "SearchSpace",
    "SpecError",
    "StrategySpec",
    "TrialPhase",
    "TrialTemplate",
    "format_validation_error",
]
