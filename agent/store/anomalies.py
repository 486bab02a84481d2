"""The ``anomalies`` table (scored buckets) and the scoring watermark in ``meta``.

Named functions taking a cursor; every value is a bound parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import duckdb
from strata.agent.store import meta_value

__all__ = [
    "ANOMALY_COLUMNS",
    "WATERMARK_KEY",
    "advance_watermark",
    "insert_anomalies",
    "list_anomalies",
    "scored_until",
]

WATERMARK_KEY: Final = "anomaly_scored_until_ns"
ANOMALY_COLUMNS: Final = ("series", "time_ns", "layer", "signal", "unit", "service", "host",
                          "device", "labels", "value", "score")
_EQUALITY_FILTERS: Final = ("service", "host", "layer", "signal")


def insert_anomalies(cur: duckdb.DuckDBPyConnection, rows: Sequence[Sequence[Any]]) -> None:
    """Insert rows (``ANOMALY_COLUMNS`` then ``received_ns``); a (series, bucket) already
    stored is kept."""
    if rows:
        cur.executemany(
            "INSERT INTO anomalies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING", [list(r) for r in rows])


def scored_until(cur: duckdb.DuckDBPyConnection) -> int | None:
    """The stored scoring watermark: every bucket before it was scored (None: never)."""
    value = meta_value(cur, WATERMARK_KEY)
    return None if value is None else int(value)


def advance_watermark(cur: duckdb.DuckDBPyConnection, scored_until_ns: int) -> None:
    """Move the scoring watermark forward to *scored_until_ns* (never back)."""
    cur.execute(
        "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
        "CAST(greatest(CAST(meta.value AS BIGINT), CAST(excluded.value AS BIGINT)) AS VARCHAR)",
        [WATERMARK_KEY, str(scored_until_ns)])


def list_anomalies(
    cur: duckdb.DuckDBPyConnection,
    *,
    service: str | None = None,
    host: str | None = None,
    layer: str | None = None,
    signal: str | None = None,
    min_score: float = 0.0,
    since_ns: int | None = None,
    until_ns: int | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Anomalies matching every given filter (empty strings match everything), newest bucket
    first, then highest score; dicts keyed by ``ANOMALY_COLUMNS`` (labels as JSON text)."""
    filters = {"service": service, "host": host, "layer": layer, "signal": signal}
    where = [f"{column} = ${column}" for column in _EQUALITY_FILTERS if filters[column]]
    params: dict[str, Any] = {k: v for k, v in filters.items() if v}
    where.append("score >= $min_score")
    params["min_score"] = min_score
    if since_ns is not None:
        where.append("time_ns >= $since")
        params["since"] = since_ns
    if until_ns is not None:
        where.append("time_ns < $until")
        params["until"] = until_ns
    params["limit"] = limit
    rows = cur.execute(
        f"SELECT {', '.join(ANOMALY_COLUMNS)} FROM anomalies WHERE {' AND '.join(where)} "  # noqa: S608 - fixed column names; values bound
        "ORDER BY time_ns DESC, score DESC, series LIMIT $limit",
        params,
    ).fetchall()
    return [dict(zip(ANOMALY_COLUMNS, row, strict=True)) for row in rows]
