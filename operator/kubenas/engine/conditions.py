"""Kubernetes-style conditions: set one, keeping lastTransitionTime unless its status changes."""

from __future__ import annotations

from collections.abc import Sequence

from kubenas.api.status import Condition


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
) -> list[Condition]:
    value = "True" if status else "False"
    old = next((c for c in conditions if c.type == type_), None)
    since = old.last_transition_time if old is not None and old.status == value else now
    new = Condition(
        type=type_,
        status=value,
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time=since,
    )
    return [c for c in conditions if c.type != type_] + [new]
