"""FinOps: totals of cost rows and the refresh of the hourly cost rollup.

The grouped reads themselves are ``strata.agent.store.costs.cost_report`` (its docstring says
what counts as a request and how the rollup is read). ``refresh_cost_rollup`` decides which
hours of ``cost_hourly`` to rebuild and moves its watermark: the hours touched by spans
received since its last run, and hours given explicitly (e.g. after the GPU pass re-priced
them). A batch that commits after a refresh with an older ``received_ns`` (it was stamped
before it got the write lock) is missing from full hours until the next refresh, which
re-scans ``ROLLUP_SLACK_NS`` back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import duckdb
from strata.agent.store import costs
from strata.agent.store.costs import MEASURES
from strata.agent.store.db import DuckDBStore
from strata.agent.units import HOUR_NS, MINUTE_NS

__all__ = [
    "ROLLUP_SLACK_NS",
    "refresh_cost_rollup",
    "refresh_rollup_hours",
    "summarize",
]

# A batch is stamped with received_ns before it takes the write lock, so one stamped
# slightly earlier than the last refresh may commit after it: re-scan this far back.
ROLLUP_SLACK_NS: Final = 5 * MINUTE_NS
_S_PER_H = 3600


def summarize(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Add up cost rows and derive the per-request figures.

    Returns:
        The summed measures plus ``unpriced_requests``, ``wh_per_request``,
        ``j_per_token`` and ``gco2e_per_request`` (None where nothing is known).
    """
    total: dict[str, Any] = {m: None for m in MEASURES}
    for row in rows:
        for m in MEASURES:
            if row[m] is not None:
                total[m] = row[m] if total[m] is None else total[m] + row[m]
    for m in ("requests", "priced_requests", "energy_requests", "co2e_requests"):
        total[m] = total[m] or 0
    total["unpriced_requests"] = total["requests"] - total["priced_requests"]
    energy_n, co2_n = total["energy_requests"], total["co2e_requests"]
    total["wh_per_request"] = total["energy_wh"] / energy_n if energy_n else None
    tokens = total["token_energy_tokens"]
    total["j_per_token"] = (
        total["token_energy_wh"] * _S_PER_H / tokens
        if tokens and total["token_energy_wh"] is not None
        else None
    )
    total["gco2e_per_request"] = total["co2e_g"] / co2_n if co2_n else None
    return total


def refresh_rollup_hours(
    cur: duckdb.DuckDBPyConnection, hours: Iterable[int], *, watermark_ns: int | None = None
) -> int:
    """Rebuild the rollup rows of *hours* (hour starts, ns) inside the caller's transaction.

    Only spans received at or before the rollup's watermark (default: the stored one) go in,
    because queries add the spans received after it from the spans table: a span is counted
    in exactly one of the two. Returns how many hours were rebuilt.
    """
    wanted = sorted({h - h % HOUR_NS for h in hours})
    if not wanted:
        return 0
    watermark = costs.rollup_watermark(cur) if watermark_ns is None else watermark_ns
    costs.rebuild_rollup_hours(cur, wanted, watermark_ns=watermark)
    return len(wanted)


def refresh_cost_rollup(store: DuckDBStore, *, hours: Iterable[int] = ()) -> int:
    """Bring ``cost_hourly`` up to date with the spans received since the last refresh.

    Rebuilds every hour touched by spans received since the previous watermark (minus a
    slack for batches that committed late), plus *hours*. Idempotent; one transaction.

    Returns:
        How many hours were rebuilt.
    """
    with store.transaction() as cur:
        previous = costs.rollup_watermark(cur)
        since = previous - ROLLUP_SLACK_NS if previous >= 0 else -1
        latest, touched = costs.spans_received_since(cur, since)
        watermark = max(previous, -1 if latest is None else latest)
        rebuilt = refresh_rollup_hours(cur, touched | set(hours), watermark_ns=watermark)
        if watermark > previous:
            costs.set_rollup_watermark(cur, watermark)
    return rebuilt
