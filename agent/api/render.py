"""JSON rendering shared by the API routers: RFC 3339 UTC times, parsed time filters."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import HTTPException
from strata.agent.model import rfc3339
from strata.agent.units import NS_PER_S

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
