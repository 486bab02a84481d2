"""Shared by the API routers: RFC 3339 UTC rendering, and the one validated parser of each
kind of query parameter.

Every time, duration and number a route reads from its query string goes through here, so
an out-of-range value is a 4xx with a reason, never a 500 from a BIGINT overflow deeper down
(RELIABILITY S7): times and durations are parsed here and give 400; numbers are declared
with ``number_query``/``count_query``, which FastAPI validates (422, like any other bad
typed parameter): finite, within explicit bounds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from fastapi import HTTPException, Query
from strata.agent.config import parse_duration_s
from strata.agent.errors import ConfigError
from strata.agent.model import rfc3339
from strata.agent.units import DAY_NS, NS_PER_S

if TYPE_CHECKING:
    from strata.agent.api.host import ApiHost

DEFAULT_RANGE_NS: Final = 7 * DAY_NS
MAX_NS: Final = (1 << 63) - 1  # the store's BIGINT nanoseconds: 1970 up to 2262-04-11

__all__ = ["count_query", "number_query", "parse_duration_ns", "parse_time", "rfc3339",
           "time_range"]


def parse_time(value: str | None, name: str) -> int | None:
    """An RFC 3339 time (or integer ns) from a query parameter, as ns; 400 when invalid or
    outside what the store holds (1970 to 2262)."""
    if value is None or value == "":
        return None
    if value.isascii() and value.isdigit():
        ns = int(value) if len(value) <= 19 else MAX_NS + 1
    else:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            msg = f"{name} must be an RFC 3339 time or integer ns, got {value[:60]!r}"
            raise HTTPException(400, msg) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ns = int(parsed.timestamp() * NS_PER_S)
    if not 0 <= ns <= MAX_NS:
        raise HTTPException(400, f"{name} must be between 1970 and 2262, got {value[:60]!r}")
    return ns


def parse_duration_ns(value: str, name: str) -> int:
    """A duration like ``5m`` or ``500ms`` from a query parameter, as ns; 400 when invalid,
    under 1 ms or over what the store's nanoseconds can span."""
    try:
        ns = parse_duration_s(value, name) * NS_PER_S
    except ConfigError as exc:
        raise HTTPException(400, str(exc)) from None
    if not 1e6 <= ns <= MAX_NS:
        raise HTTPException(400, f"{name} must be between 1ms and 292 years, got {value[:60]!r}")
    return int(ns)


def number_query(default: float | None, *, ge: float, le: float, description: str = "") -> Any:
    """A float query parameter: finite (no inf, nan, 1e309) and within [ge, le]."""
    return Query(default, ge=ge, le=le, allow_inf_nan=False, description=description or None)


def count_query(default: int, *, le: int, ge: int = 1, description: str = "") -> Any:
    """An integer query parameter within [ge, le] (an upper bound is required: it is bound
    into SQL as BIGINT)."""
    return Query(default, ge=ge, le=le, description=description or None)


def time_range(agent: ApiHost, since: str | None, until: str | None) -> tuple[int, int]:
    """Parsed ``since``/``until`` (defaults: the last 7 days to now); 400 when reversed."""
    until_ns = parse_time(until, "until")
    until_ns = agent.clock() if until_ns is None else until_ns
    since_ns = parse_time(since, "since")
    since_ns = max(0, until_ns - DEFAULT_RANGE_NS) if since_ns is None else since_ns
    if since_ns >= until_ns:
        raise HTTPException(400, "since must be before until")
    return since_ns, until_ns
