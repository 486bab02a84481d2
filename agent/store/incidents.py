"""Incident persistence: the ``incidents`` and ``incident_events`` tables.

Functions take a cursor (inside ``DuckDBStore.transaction()`` for writes) and use bound
parameters only. Evidence, cause and suggestion are stored as JSON in DESIGN.md's shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

import duckdb
from strata.agent.model import (
    Evidence,
    Incident,
    IncidentEvent,
    Rollback,
    Suggestion,
    SuspectedCause,
)
from strata.agent.store import first_row

INCIDENT_COLUMNS = ("id, kind, layer, service, host, status, severity, started_ns, detected_ns, "
            "resolved_ns, summary, evidence, suspected_cause, suggestion")
MANUAL_RESOLVE = "resolved by operator"


def _dump(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def incident_row(incident: Incident) -> list[Any]:
    return [
        incident.id, incident.kind, incident.layer, incident.service, incident.host,
        incident.status, incident.severity, incident.started_at_ns, incident.detected_at_ns,
        incident.resolved_at_ns, incident.summary,
        _dump([asdict(e) for e in incident.evidence]),
        _dump(asdict(incident.suspected_cause) if incident.suspected_cause else None),
        _dump(asdict(incident.suggestion) if incident.suggestion else None),
    ]


def incident_from_row(row: tuple[Any, ...], events: tuple[IncidentEvent, ...] = ()) -> Incident:
    cause = json.loads(row[12]) if row[12] else None
    suggestion = json.loads(row[13]) if row[13] else None
    if suggestion is not None:
        rollback = suggestion.get("rollback")
        suggestion = Suggestion(suggestion["action"], suggestion["detail"],
                                Rollback(**rollback) if rollback else None)
    return Incident(
        id=row[0], kind=row[1], layer=row[2], service=row[3], host=row[4], status=row[5],
        severity=row[6], started_at_ns=int(row[7]), detected_at_ns=int(row[8]),
        resolved_at_ns=None if row[9] is None else int(row[9]), summary=row[10],
        evidence=tuple(Evidence(**e) for e in json.loads(row[11])),
        suspected_cause=SuspectedCause(**cause) if cause else None,
        suggestion=suggestion,
        events=events,
    )


def events_of(cur: duckdb.DuckDBPyConnection, incident_id: str) -> tuple[IncidentEvent, ...]:
    rows = cur.execute(
        "SELECT time_ns, event, detail FROM incident_events WHERE incident_id = ? "
        "ORDER BY time_ns, rowid",
        [incident_id],
    ).fetchall()
    return tuple(IncidentEvent(int(r[0]), r[1], r[2]) for r in rows)


def get_incident(
    cur: duckdb.DuckDBPyConnection, incident_id: str, *, with_events: bool = True
) -> Incident | None:
    """One incident (with its timeline), or None."""
    row = first_row(cur.execute(
        f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?", [incident_id]  # noqa: S608 - fixed
    ))
    if row is None:
        return None
    return incident_from_row(row, events_of(cur, incident_id) if with_events else ())


def list_incidents(
    cur: duckdb.DuckDBPyConnection,
    *,
    status: str | None = None,
    service: str | None = None,
    kind: str | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    limit: int = 500,
) -> list[Incident]:
    """Incidents matching every filter, newest start first (timelines not loaded)."""
    rows = cur.execute(
        f"""
        SELECT {INCIDENT_COLUMNS} FROM incidents
        WHERE (CAST(? AS VARCHAR) IS NULL OR status = ?)
          AND (CAST(? AS VARCHAR) IS NULL OR service = ?)
          AND (CAST(? AS VARCHAR) IS NULL OR kind = ?)
          AND (CAST(? AS BIGINT) IS NULL OR started_ns >= ?)
          AND (CAST(? AS BIGINT) IS NULL OR started_ns < ?)
        ORDER BY started_ns DESC, id
        LIMIT ?
        """,  # noqa: S608 - fixed column list
        [status, status, service, service, kind, kind, since_ns, since_ns, until_ns, until_ns,
         limit],
    ).fetchall()
    return [incident_from_row(r) for r in rows]


def open_incidents_between(
    cur: duckdb.DuckDBPyConnection, since_ns: int, until_ns: int
) -> list[Incident]:
    """Open or acknowledged incidents that started in [since_ns, until_ns)."""
    rows = cur.execute(
        f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE status IN ('open', 'acknowledged') "  # noqa: S608
        "AND started_ns >= ? AND started_ns < ? ORDER BY started_ns, id",
        [since_ns, until_ns],
    ).fetchall()
    return [incident_from_row(r) for r in rows]


def insert_incident(cur: duckdb.DuckDBPyConnection, incident: Incident, updated_ns: int) -> None:
    cur.execute(
        f"INSERT INTO incidents ({INCIDENT_COLUMNS}, updated_ns) "  # noqa: S608 - fixed column list
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [*incident_row(incident), updated_ns],
    )


def update_incident(cur: duckdb.DuckDBPyConnection, incident: Incident, updated_ns: int) -> None:
    row = incident_row(incident)
    cur.execute(
        "UPDATE incidents SET kind = ?, layer = ?, service = ?, host = ?, status = ?, "
        "severity = ?, started_ns = ?, detected_ns = ?, resolved_ns = ?, summary = ?, "
        "evidence = ?, suspected_cause = ?, suggestion = ?, updated_ns = ? WHERE id = ?",
        [*row[1:], updated_ns, incident.id],
    )


def add_events(
    cur: duckdb.DuckDBPyConnection, incident_id: str, events: Iterable[IncidentEvent]
) -> int:
    """Append the events not already on the timeline (same time, event and detail)."""
    added = 0
    for e in events:
        exists = first_row(cur.execute(
            "SELECT 1 FROM incident_events WHERE incident_id = ? AND time_ns = ? AND event = ? "
            "AND detail = ?",
            [incident_id, e.time_unix_nano, e.event, e.detail],
        ))
        if exists is None:
            cur.execute("INSERT INTO incident_events VALUES (?, ?, ?, ?)",
                        [incident_id, e.time_unix_nano, e.event, e.detail])
            added += 1
    return added


def manually_resolved(cur: duckdb.DuckDBPyConnection, incident_id: str) -> bool:
    row = first_row(cur.execute(
        "SELECT 1 FROM incident_events WHERE incident_id = ? AND event = 'resolved' "
        "AND starts_with(detail, ?)",
        [incident_id, MANUAL_RESOLVE],
    ))
    return row is not None


def set_status(
    cur: duckdb.DuckDBPyConnection, incident_id: str, status: str, *, time_ns: int,
    detail: str,
) -> Incident | None:
    """An operator's ack or resolve: new status plus a timeline event; None when unknown."""
    current = get_incident(cur, incident_id, with_events=False)
    if current is None:
        return None
    if current.status != status:
        resolved_ns = time_ns if status == "resolved" else current.resolved_at_ns
        cur.execute(
            "UPDATE incidents SET status = ?, resolved_ns = ?, updated_ns = ? WHERE id = ?",
            [status, resolved_ns, time_ns, incident_id],
        )
        event = "acknowledged" if status == "acknowledged" else status
        add_events(cur, incident_id, [IncidentEvent(time_ns, event, detail)])
    return get_incident(cur, incident_id)


def open_incident_counts(cur: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    """Open and acknowledged incidents counted: rows ``(kind, layer, severity, service or '',
    status, count)``, most first, then by those labels."""
    return cur.execute(
        "SELECT kind, layer, severity, coalesce(service, ''), status, count(*) FROM incidents "
        "WHERE status IN ('open', 'acknowledged') GROUP BY ALL ORDER BY 6 DESC, 1, 2, 3, 4, 5"
    ).fetchall()
