"""The operator's defaults for what an experiment leaves out: where trials push metrics and store outputs,
and how trial pods look (its --trial-defaults, a partial spec.trialTemplate).

Set by the operator's flags (the Helm chart's values); an experiment's own spec.metrics / spec.storage
wins over them, and so does each field of spec.trialTemplate the experiment sets (a whole field: an
experiment's resources replace the default resources, they are not merged into them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubenas.api.errors import SpecError, parse_model
from kubenas.api.experiment import NASExperimentSpec, TrialTemplate
from kubenas.api.outputs import MetricsSpec, StorageSpec

TRIAL_DEFAULTS_FLAG = "--trial-defaults"


@dataclass(frozen=True)
class OperatorDefaults:
    metrics: MetricsSpec | None = None
    storage: StorageSpec | None = None
    trial_template: TrialTemplate | None = None  # only the fields it sets count

    def apply(self, spec: NASExperimentSpec) -> NASExperimentSpec:
        update: dict[str, Any] = {
            "metrics": spec.metrics or self.metrics,
            "storage": spec.storage or self.storage,
        }
        if self.trial_template is not None:
            update["trial_template"] = merged_template(self.trial_template, spec.trial_template)
        return spec.model_copy(update=update)


def merged_template(defaults: TrialTemplate, own: TrialTemplate) -> TrialTemplate:
    """The experiment's template over the operator's: field by field, the experiment's set ones win."""
    fields = {**_set_fields(defaults), **_set_fields(own)}
    return parse_model(TrialTemplate, fields, prefix="spec.trialTemplate")


def _set_fields(template: TrialTemplate) -> dict[str, Any]:
    return template.model_dump(mode="json", by_alias=True, exclude_unset=True)


def parse_trial_defaults(text: str) -> TrialTemplate:
    """The --trial-defaults JSON object as a partial trial template (SpecError naming the field)."""
    try:
        data = json.loads(text)
    except ValueError as error:
        raise SpecError([f"{TRIAL_DEFAULTS_FLAG}: not JSON ({error})"]) from None
    if not isinstance(data, dict):
        raise SpecError([f"{TRIAL_DEFAULTS_FLAG}: must be a JSON object, a partial spec.trialTemplate"])
    return parse_model(TrialTemplate, data, prefix=TRIAL_DEFAULTS_FLAG)
