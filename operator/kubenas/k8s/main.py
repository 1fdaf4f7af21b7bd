"""`kubenas operator`: run the kopf operator in this process."""

from __future__ import annotations

import logging

import kopf

from kubenas.api.experiment import GROUP
from kubenas.k8s.client import KubeApi, load_config
from kubenas.k8s.defaults import OperatorDefaults
from kubenas.k8s.handlers import register


def settings() -> kopf.OperatorSettings:
    s = kopf.OperatorSettings()
    # Keep kopf's bookkeeping in annotations: the status schema is ours and structural.
    s.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    s.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    s.posting.level = logging.INFO
    s.watching.server_timeout = 120
    s.execution.max_workers = 8
    return s


def run_operator(
    namespaces: list[str],
    interval: float,
    verbose: bool,
    liveness: str | None = None,
    metrics_port: int | None = None,
    defaults: OperatorDefaults | None = None,
) -> int:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)  # /metrics: kubenas.metrics.operator's collectors
    load_config()
    registry = kopf.OperatorRegistry()
    # A fresh registry has none of kopf's default login handlers: log in as the kubernetes client does
    # (in-cluster service account, else $KUBECONFIG).
    kopf.on.login(registry=registry)(kopf.login_via_client)
    register(registry, KubeApi(), interval, defaults)
    kopf.run(
        registry=registry,
        settings=settings(),
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness,
    )
    return 0
