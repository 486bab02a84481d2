"""The ``logs`` table: OTLP log records and GenAI events (schema v3; v4: ``trace_key``).

``insert_logs`` runs inside ``DuckDBStore.write_batch``'s transaction; the reads take a
cursor. Every value from a caller is a bound parameter.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

import duckdb
import pyarrow as pa
from strata.agent.model import LogRecord
from strata.agent.store.columns import ONE_TRACE_SQL, trace_key_sql

__all__ = ["TRACE_LOG_COLUMNS", "insert_logs", "trace_logs"]

_SCHEMA: Final = pa.schema([
    ("time_ns", pa.int64()), ("trace_id", pa.string()), ("span_id", pa.string()),
    ("service", pa.string()), ("severity_number", pa.int32()), ("severity_text", pa.string()),
    ("event_name", pa.string()), ("error_type", pa.string()), ("body", pa.string()),
    ("attributes", pa.string()), ("resource", pa.string()), ("span_event", pa.bool_()),
    ("received_ns", pa.int64()),
])
TRACE_LOG_COLUMNS: Final = (
    "time_ns", "span_id", "service", "severity_number", "severity_text", "event_name",
    "error_type", "body", "attributes", "span_event",
)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def insert_logs(cur: duckdb.DuckDBPyConnection, logs: Sequence[LogRecord],
                received_ns: int) -> None:
    """Append *logs* (inside the caller's transaction)."""
    if not logs:
        return
    table = pa.Table.from_pydict({
        "time_ns": [r.time_unix_nano for r in logs],
        "trace_id": [r.trace_id for r in logs],
        "span_id": [r.span_id for r in logs],
        "service": [r.service for r in logs],
        "severity_number": [r.severity_number for r in logs],
        "severity_text": [r.severity_text for r in logs],
        "event_name": [r.event_name for r in logs],
        "error_type": [r.error_type for r in logs],
        "body": [None if r.body is None else _dumps(r.body) for r in logs],
        "attributes": [_dumps(r.attributes) for r in logs],
        "resource": [_dumps(r.resource) for r in logs],
        "span_event": [r.span_event for r in logs],
        "received_ns": [received_ns] * len(logs),
    }, schema=_SCHEMA)
    cur.register("_log_batch", table)
    cur.execute(f"INSERT INTO logs SELECT *, {trace_key_sql('trace_id')} FROM _log_batch")  # noqa: S608
    cur.unregister("_log_batch")


def trace_logs(cur: duckdb.DuckDBPyConnection, trace_id: str) -> list[dict[str, Any]]:
    """The log records and span events of one trace in time order, body and attributes
    decoded; a record stored twice (a client resent a committed batch) is returned once."""
    rows = cur.execute(
        f"SELECT DISTINCT {', '.join(TRACE_LOG_COLUMNS)} FROM logs "  # noqa: S608 - fixed
        f"WHERE {ONE_TRACE_SQL} ORDER BY time_ns, span_id, event_name",
        [trace_id, trace_id],
    ).fetchall()
    out = []
    for row in rows:
        record = dict(zip(TRACE_LOG_COLUMNS, row, strict=True))
        record["body"] = None if record["body"] is None else json.loads(record["body"])
        record["attributes"] = json.loads(record["attributes"])
        out.append(record)
    return out
