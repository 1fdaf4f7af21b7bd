"""The pure controller core shared by the operator and the local runner."""

from kubenas.engine.plan import (
    Plan,
    TrialLaunch,
    TrialReuse,
    TrialStop,
    TrialWait,
    best_trial,
    invalid_spec_status,
    nastrial_spec,
    objective_value,
    plan,
)

__all__ = [
    "Plan",
    "TrialLaunch",
    "TrialReuse",
    "TrialStop",
    "TrialWait",
    "best_trial",
    "invalid_spec_status",
    "nastrial_spec",
    "objective_value",
    "plan",
]
