"""The operator's defaults for what an experiment leaves out: where trials push metrics and store outputs.

Set by the operator's flags (the Helm chart's values); an experiment's own spec.metrics / spec.storage
wins over them.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubenas.api.experiment import NASExperimentSpec
from kubenas.api.outputs import MetricsSpec, StorageSpec


@dataclass(frozen=True)
class OperatorDefaults:
    metrics: MetricsSpec | None = None
    storage: StorageSpec | None = None

    def apply(self, spec: NASExperimentSpec) -> NASExperimentSpec:
        return spec.model_copy(
            update={"metrics": spec.metrics or self.metrics, "storage": spec.storage or self.storage}
        )
