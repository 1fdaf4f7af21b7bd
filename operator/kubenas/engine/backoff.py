"""Holding off after a failed attempt: a backend refused to create a child, or the strategy raised.

Level-triggered: the state is the experiment's status.backoff (attempts in a row, nextAttempt) and a
condition of the failure's type (CreateFailure, StrategyFailure) whose message names the object and the
cause. While it holds, decide() creates nothing; the first pass after nextAttempt tries again, and
either succeeds (backoff and condition go) or fails (the delay doubles, up to MAX_DELAY). With nothing
running meanwhile, the experiment reads Pending, not Running.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from kubenas.api.status import Backoff, Condition, ExperimentPhase, NASExperimentStatus
from kubenas.engine.conditions import set_condition

FIRST_DELAY_SECONDS = 5
MAX_DELAY_SECONDS = 300
FAILURES = ("CreateFailure", "StrategyFailure")


def holding(status: NASExperimentStatus, now: str) -> bool:
    """Whether the experiment waits for status.backoff.nextAttempt (times compare as ISO strings)."""
    return status.backoff is not None and now < status.backoff.next_attempt


def delay_seconds(attempts: int) -> int:
    return min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS << min(attempts - 1, 16))


def failed(
    status: NASExperimentStatus,
    previous: NASExperimentStatus,
    failure: str,
    reason: str,
    message: str,
    running: int,
    generation: int | None,
    now: str,
) -> NASExperimentStatus:
    """`status` after an attempt failed with `failure` (one of FAILURES): the attempt count goes on
    from `previous`, the condition keeps its transition time while it stays true."""
    before = previous.backoff
    attempts = before.attempts + 1 if before is not None and before.reason == failure else 1
    delay = delay_seconds(attempts)
    next_attempt = _later(now, delay)
    conditions: Sequence[Condition] = [c for c in status.conditions if c.type not in FAILURES]
    kept = [c for c in previous.conditions if c.type == failure]
    conditions = set_condition([*conditions, *kept], failure, True, reason, message, generation, now)
    update: dict[str, object] = {
        "backoff": Backoff(reason=failure, attempts=attempts, next_attempt=next_attempt),
        "conditions": conditions,
    }
    if running == 0 and status.phase is ExperimentPhase.RUNNING:
        waiting = f"nothing runs: {failure} ({reason}); next attempt at {next_attempt}"
        update["phase"] = ExperimentPhase.PENDING
        update["conditions"] = set_condition(conditions, "Running", False, failure, waiting, generation, now)
    return status.model_copy(update=update)


def _later(now: str, seconds: int) -> str:
    moment = datetime.fromisoformat(now.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def announcement(previous: NASExperimentStatus, status: NASExperimentStatus) -> tuple[str, str] | None:
    """(reason, message) of the Warning event a failure deserves: once when it starts or its message
    changes, never once per attempt."""
    for failure in FAILURES:
        now = next((c for c in status.conditions if c.type == failure), None)
        before = next((c for c in previous.conditions if c.type == failure), None)
        if now is not None and (
            before is None or (before.reason, before.message) != (now.reason, now.message)
        ):
            return now.reason, now.message
    return None
