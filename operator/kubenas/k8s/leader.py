"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection package does it.

Two or more operator replicas may run; only the one holding the Lease reconciles. A candidate takes
the Lease when it does not exist, when its holder is empty (released), or when its record has not
changed for `leaseDurationSeconds` as this candidate observed it (its own clock, so clock skew between
nodes does not matter). Candidates try every retry_period x [1, 1 + JITTER). The leader renews every
`retry_period`; when no renewal has succeeded for `renew_deadline`, or as soon as it reads another
holder in the Lease, it stops leading (`is_leader()` turns False before the Lease can expire for the
others, as renew_deadline < lease_duration) and `on_lost` runs. On a graceful stop the leader releases
the Lease (holder emptied), so a standby takes over at its next try.

Takeover after the leader dies without releasing, counted from its death: from lease_duration -
retry_period to lease_duration + 2 x 2.2 x retry_period (a standby sees the last renewal up to one
jittered try late, and tries again up to one jittered try after expiry); with the defaults (client-go's:
15 s lease, 10 s renew deadline, 2 s retry period) 13-24 s, then kopf's start. Measured (5 SIGKILLs,
benchmarks/results/ha_failover.md): Lease taken after 16.9 s (median), first reconcile pass 2-3 s later.
After a graceful stop (SIGTERM): within one jittered try, at most 4.4 s.

Why not a library: kopf's peering freezes all operators of equal priority rather than electing one
(docs.kopf.dev/en/latest/peering), and kubernetes.leaderelection neither releases the Lease on shutdown
nor bounds its API calls by a timeout, and exits the interpreter on bad settings.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)
JITTER = 1.2  # client-go's JitterFactor: retries wait retry_period x [1, 1 + JITTER)


def default_identity() -> str:
    """$POD_NAME (the downward API's metadata.name) when set: no two live pods share it, and a container
    restarted in its pod takes its own Lease back at once. Else, as client-go, the hostname and a uuid
    (the hostname alone is not unique: pods on the host network share the node's)."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}_{uuid.uuid4()}"


@dataclass(frozen=True)
class ElectionConfig:
    namespace: str
    name: str = "kubenas-operator"
    identity: str = field(default_factory=default_identity)
    lease_duration: float = 15.0  # seconds a standby waits, from its last sight of a change, to take over
    renew_deadline: float = 10.0  # seconds the leader keeps leading without a successful renewal
    retry_period: float = 2.0  # seconds between tries (to acquire, to renew)

    def __post_init__(self) -> None:
        if not self.name or not self.namespace:
            raise ValueError("leader election: the Lease's name and namespace must not be empty")
        if self.lease_duration <= self.renew_deadline:
            raise ValueError(
                f"leader election: lease_duration ({self.lease_duration}) must be greater than "
                f"renew_deadline ({self.renew_deadline})"
            )
        if self.renew_deadline <= JITTER * self.retry_period:
            raise ValueError(
                f"leader election: renew_deadline ({self.renew_deadline}) must be greater than "
                f"{JITTER} x retry_period ({self.retry_period})"
            )
        if self.lease_duration < 1:  # the Lease's leaseDurationSeconds is a whole number of seconds
            raise ValueError(f"leader election: lease_duration ({self.lease_duration}) must be at least 1")
        if self.retry_period <= 0:
            raise ValueError(f"leader election: retry_period ({self.retry_period}) must be positive")


@dataclass(frozen=True)
class Record:
    """The Lease's spec, as observed."""

    holder: str
    duration: int
    acquire_time: str | None
    renew_time: str | None
    transitions: int


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # metav1.MicroTime


class LeaderElector:
    def __init__(
        self,
        config: ElectionConfig,
        api: client.CoordinationV1Api | None = None,
        on_lost: Callable[[], None] | None = None,
    ):
        self.config = config
        self.api = api or client.CoordinationV1Api()
        self.on_lost = on_lost
        self._observed: Record | None = None
        self._observed_at = 0.0  # monotonic time the record last changed, as seen here
        self._renewed_at: float | None = None  # monotonic time of the last successful acquire/renew
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._timeout = max(1.0, config.renew_deadline / 2)  # per API call: a hung call cannot block renewal

    def is_leader(self) -> bool:
        """Holding the Lease now: renewed less than renew_deadline ago, whatever the renew thread does."""
        renewed = self._renewed_at
        return renewed is not None and time.monotonic() - renewed < self.config.renew_deadline

    def try_acquire_or_renew(self) -> bool:
        """One try, as client-go's tryAcquireOrRenew: True when this candidate holds the Lease after it."""
        c = self.config
        try:
            lease = self.api.read_namespaced_lease(c.name, c.namespace, _request_timeout=self._timeout)
        except ApiException as error:
            if error.status != 404:
                log.info("reading Lease %s/%s: %s %s", c.namespace, c.name, error.status, error.reason)
                return False
            return self._write(None, self._record(c.identity, None))
        except Exception as error:  # connection refused, timeout: the next try may succeed
            log.info("reading Lease %s/%s: %s", c.namespace, c.name, error)
            return False
        spec = lease.spec or client.V1LeaseSpec()
        observed = Record(
            holder=spec.holder_identity or "",
            duration=int(spec.lease_duration_seconds or c.lease_duration),
            acquire_time=_iso(spec.acquire_time),
            renew_time=_iso(spec.renew_time),
            transitions=int(spec.lease_transitions or 0),
        )
        now = time.monotonic()
        if observed != self._observed:
            if self._observed is not None and observed.holder != self._observed.holder:
                log.info("the Lease's holder is now %r", observed.holder)
            self._observed, self._observed_at = observed, now
        mine = observed.holder == c.identity
        if observed.holder and not mine and now < self._observed_at + observed.duration:
            if self._renewed_at is not None:  # another took it: stop leading now, not at the deadline
                log.error("the Lease is held by %r: stopped leading", observed.holder)
                self._renewed_at = None
            return False  # held by another, not expired
        version = lease.metadata.resource_version if lease.metadata else None
        return self._write(version or "", self._record(c.identity, observed))

    def _record(self, holder: str, old: Record | None) -> dict[str, Any]:
        now = _now()
        keep = old is not None and old.holder == holder
        return {
            "holderIdentity": holder,
            "leaseDurationSeconds": int(self.config.lease_duration),
            "acquireTime": old.acquire_time if keep and old else now,
            "renewTime": now,
            "leaseTransitions": (old.transitions + (not keep)) if old else 0,
        }

    def _write(self, resource_version: str | None, spec: dict[str, Any]) -> bool:
        """Create (no resource_version) or replace the Lease; a conflict means another candidate won."""
        c = self.config
        metadata: dict[str, Any] = {"name": c.name, "namespace": c.namespace}
        body: Any = {"metadata": metadata, "spec": spec}
        try:
            if resource_version is None:
                self.api.create_namespaced_lease(c.namespace, body, _request_timeout=self._timeout)
            else:
                metadata["resourceVersion"] = resource_version
                self.api.replace_namespaced_lease(c.name, c.namespace, body, _request_timeout=self._timeout)
        except ApiException as error:
            if error.status != 409:
                log.info("writing Lease %s/%s: %s %s", c.namespace, c.name, error.status, error.reason)
            return False
        except Exception as error:
            log.info("writing Lease %s/%s: %s", c.namespace, c.name, error)
            return False
        if spec["holderIdentity"] == c.identity:
            self._renewed_at = time.monotonic()
        return True

    def acquire(self) -> bool:
        """Block until this candidate holds the Lease (True) or stop() was called (False)."""
        log.info(
            "standing by for Lease %s/%s as %s", self.config.namespace, self.config.name, self.config.identity
        )
        while not self._stop.is_set():
            if self.try_acquire_or_renew():
                log.info("acquired Lease %s/%s: leading", self.config.namespace, self.config.name)
                return True
            self._stop.wait(self.config.retry_period * (1 + random.random() * JITTER))
        return False

    def start_renewing(self) -> None:
        self._thread = threading.Thread(target=self._renew_loop, name="leader-renew", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.config.retry_period):
            if self.try_acquire_or_renew():
                continue
            if not self.is_leader():
                log.error(
                    "lost Lease %s/%s: another holds it, or no renewal within the %gs renew deadline",
                    self.config.namespace,
                    self.config.name,
                    self.config.renew_deadline,
                )
                self._renewed_at = None
                if self.on_lost is not None:
                    self.on_lost()
                return

    def release(self) -> None:
        """Stop renewing; if still the holder, empty the Lease so a standby takes over at its next try."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._timeout * 2)
        if not self.is_leader():
            return
        self._renewed_at = None
        c = self.config
        try:
            lease = self.api.read_namespaced_lease(c.name, c.namespace, _request_timeout=self._timeout)
            if lease.spec is None or lease.metadata is None or lease.spec.holder_identity != c.identity:
                return
            now = _now()
            spec = {
                "holderIdentity": "",
                "leaseDurationSeconds": 1,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": lease.spec.lease_transitions or 0,
            }
            self._write(lease.metadata.resource_version, spec)
            log.info("released Lease %s/%s", c.namespace, c.name)
        except Exception as error:  # it expires by itself then
            log.warning("releasing Lease %s/%s: %s", c.namespace, c.name, error)


def _iso(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
