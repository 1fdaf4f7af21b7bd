"""Time as the engine sees it: RFC 3339 UTC strings passed in (the engine reads no clock)."""

from __future__ import annotations

from datetime import datetime


def elapsed(since: str, until: str) -> float:
    """Seconds from `since` to `until`; 0 when they are not both RFC 3339 times (a status edited by hand
    must not stop the controller) or `until` comes first (writers' clocks may disagree)."""
    try:
        seconds = (datetime.fromisoformat(until) - datetime.fromisoformat(since)).total_seconds()
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, seconds)
