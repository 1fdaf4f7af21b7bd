"""Where trials report besides their final result: live metrics and object storage."""

from __future__ import annotations

from kubenas_trainer.spec import CamelModel
from pydantic import Field

# Whitespace spelled out: \s is ASCII whitespace to the API server (RE2) but Unicode whitespace to the
# models (Rust's regex), so a pattern with \s would let the two disagree on a no-break space.
_SPACE = r"\t\n\f\r "
URL = rf"^https?://[^{_SPACE}/]+(/[^{_SPACE}]*)?$"
K8S_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


class MetricsSpec(CamelModel):
    """Live per-epoch metrics: every trial pushes them to a Pushgateway after each epoch; the operator
    reads them back from a Prometheus that scrapes it (honor_labels: true)."""

    pushgateway: str = Field(
        pattern=URL,
        max_length=2048,
        description="Pushgateway base URL, e.g. http://pushgateway.monitoring:9091.",
    )
    prometheus: str | None = Field(
        default=None,
        pattern=URL,
        max_length=2048,
        description=(
            "Prometheus base URL, e.g. http://prometheus.monitoring:9090: the operator reads per-epoch "
            "metrics through its HTTP API (the median rule, ASHA's rungs, the trials' curves). Without "
            "it trials still push (for dashboards) and decisions use the trials' own reports."
        ),
    )


class StorageSpec(CamelModel):
    """Object storage (any S3-compatible endpoint) for every trial's run directory: result, metrics,
    checkpoint, trained and exported model, TensorBoard events. A trial that continues another (ASHA
    promotion, PBT, MIHA, a preempted pod) fetches the checkpoint from there: no shared volume needed."""

    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", description="Bucket (it must exist).")
    prefix: str = Field(
        default="kubenas",
        max_length=512,
        pattern=rf"^[^/{_SPACE}]([^{_SPACE}]*[^/{_SPACE}])?$",
        description="Key prefix: each trial uploads to s3://<bucket>/<prefix>/<namespace>/<experiment>/<trial>/.",
    )
    endpoint: str | None = Field(
        default=None, pattern=URL, max_length=2048, description="An S3-compatible endpoint URL (default AWS)."
    )
    region: str | None = Field(default=None, max_length=64, description="Region of the bucket.")
    secret_name: str | None = Field(
        default=None,
        pattern=K8S_NAME,
        max_length=253,
        description=(
            "A Secret in the experiment's namespace with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
            "optionally AWS_SESSION_TOKEN), given to trial pods with envFrom. Credentials never go in the "
            "spec; without a Secret, pods use their own identity (e.g. IRSA, workload identity)."
        ),
    )

    def trial_uri(self, namespace: str, experiment: str, trial: str) -> str:
        """Where the trial's run directory goes (a prefix ending in /)."""
        return f"s3://{self.bucket}/{self.prefix}/{namespace}/{experiment}/{trial}/"
