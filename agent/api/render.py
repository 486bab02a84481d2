"""JSON rendering shared by the API routers: RFC 3339 UTC times, parsed time filters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from fastapi import HTTPException
from strata.agent.model import rfc3339
from strata.agent.units import DAY_NS, NS_PER_S

if TYPE_CHECKING:
    from strata.agent.runner import Agent

DEFAULT_RANGE_NS: Final = 7 * DAY_NS

__all__ = ["parse_time", "rfc3339"]


def parse_time(value: str | None, name: str) -> int | None:
    """An RFC 3339 time (or integer ns) from a query parameter, as ns; 400 when invalid."""
    if value is None or value == "":
        return None
    if value.isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(400, f"{name} must be an RFC 3339 time, got {value[:60]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * NS_PER_S)


def time_range(agent: Agent, since: str | None, until: str | None) -> tuple[int, int]:
    """Parsed ``since``/``until`` (defaults: the last 7 days to now); 400 when reversed."""
    until_ns = parse_time(until, "until")
    until_ns = agent.clock() if until_ns is None else until_ns
    since_ns = parse_time(since, "since")
    since_ns = until_ns - DEFAULT_RANGE_NS if since_ns is None else since_ns
    if since_ns >= until_ns:
        raise HTTPException(400, "since must be before until")
    return since_ns, until_ns
