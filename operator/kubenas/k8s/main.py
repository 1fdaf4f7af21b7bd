"""`kubenas operator`: run the kopf operator in this process.

With leader election (the default) the process first stands by for the Lease (kubenas.k8s.leader):
it starts kopf, and so watches, reconciles, creates trials and Jobs and posts events, only once it
holds the Lease. Losing the Lease ends the process at once (exit code 3, as client-go's controllers
exit), and the kubelet restarts it as a standby. SIGTERM stops kopf, lets running passes finish and
releases the Lease, so the other replica takes over at its next try (at most 4.4 s; measured 2.2 s
median); after a crash or a SIGKILL it takes over once the Lease expires: 13-24 s with the default
15 s lease and 2 s retry period (measured 16.9 s median, first pass 19.5 s:
benchmarks/results/ha_failover.md).
"""

from __future__ import annotations

import logging
import os
import signal
import sys

import kopf

from kubenas.api.experiment import GROUP
from kubenas.k8s import logs
from kubenas.k8s.client import KubeApi, load_config
from kubenas.k8s.defaults import OperatorDefaults
from kubenas.k8s.handlers import register
from kubenas.k8s.leader import ElectionConfig, LeaderElector
from kubenas.k8s.probe import serve_standby_liveness

log = logging.getLogger(__name__)
LOST_LEASE_EXIT = 3
DRAIN_TIMEOUT = 8.0  # seconds a graceful stop waits for running passes (below the renew deadline)


def settings(namespaces: list[str]) -> kopf.OperatorSettings:
    s = kopf.OperatorSettings()
    # Watching given namespaces, the chart grants no cluster-wide list of namespaces or CRDs: kopf's
    # scan would retry those 403s for about a minute before the first reconcile.
    s.scanning.disabled = bool(namespaces)
    # Keep kopf's bookkeeping in annotations: the status schema is ours and structural.
    s.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    s.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    s.posting.level = logging.INFO
    s.watching.server_timeout = 120
    s.execution.max_workers = 8
    return s


def _lost_lease() -> None:
    """Another replica may be leading now: stop everything at once, mid-pass included."""
    log.error("lost the leader Lease: exiting")
    logging.shutdown()
    sys.stderr.flush()
    os._exit(LOST_LEASE_EXIT)


def _stand_by(elector: LeaderElector, liveness: str | None) -> None:
    """Wait for the Lease (answering the liveness probe meanwhile), then keep renewing it."""
    stop_probe = serve_standby_liveness(liveness) if liveness else None
    try:
        elector.acquire()
    finally:
        if stop_probe is not None:
            stop_probe()
    elector.start_renewing()


def _stop(signum: int, _: object) -> None:
    """SIGTERM before kopf handles it (standing by, starting): unwind, so a held Lease is released."""
    raise SystemExit(0)


def run_operator(
    namespaces: list[str],
    interval: float,
    verbose: bool,
    liveness: str | None = None,
    metrics_port: int | None = None,
    defaults: OperatorDefaults | None = None,
    election: ElectionConfig | None = None,
    log_level: str = "info",
    log_format: str = "text",
) -> int:
    """`election`: the Lease to hold before reconciling; None runs without leader election."""
    logs.configure("debug" if verbose else log_level, log_format)
    signal.signal(signal.SIGTERM, _stop)
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)  # /metrics: kubenas.metrics.operator's collectors
    load_config()
    elector = LeaderElector(election, on_lost=_lost_lease) if election is not None else None
    handlers = None
    try:
        if elector is not None:
            _stand_by(elector, liveness)
        registry = kopf.OperatorRegistry()
        # A fresh registry has none of kopf's default login handlers: log in as the kubernetes client
        # does (in-cluster service account, else $KUBECONFIG).
        kopf.on.login(registry=registry)(kopf.login_via_client)
        leading = elector.is_leader if elector else None
        handlers = register(registry, KubeApi(), interval, defaults, leading=leading)
        kopf.run(
            registry=registry,
            settings=settings(namespaces),
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=liveness,
        )
    finally:
        drained = handlers is None or handlers.queue.stop(DRAIN_TIMEOUT)
        if elector is not None and drained:
            elector.release()
        elif elector is not None:  # a pass may still write: let the Lease expire rather than hand it over
            log.warning("passes still running after %gs: the Lease is left to expire", DRAIN_TIMEOUT)
    return 0
