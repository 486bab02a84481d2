"""``seam.IncidentBook`` on ClickHouse: ``strata_incidents`` (ReplacingMergeTree by id,
latest ``updated_ns`` wins) and ``strata_incident_events`` (a repeated event collapses).
Which of its versions were alerted is ``alerts``'s.

Every write is an insert and every read uses FINAL, so two analysers writing the same
deterministic incident store it once, and no read sees a superseded version.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, Final

import pyarrow as pa
from strata.agent.model import Incident, IncidentEvent
from strata.agent.store.anomalies import ANOMALY_COLUMNS, WATERMARK_KEY
from strata.agent.store.clickhouse import alerts
from strata.agent.store.clickhouse.engine import Engine, rows
from strata.agent.store.incidents import (
    INCIDENT_COLUMNS,
    MANUAL_RESOLVE,
    incident_from_row,
    incident_row,
)

_NAMES: Final = [c.strip() for c in INCIDENT_COLUMNS.split(",")]
_TYPES: Final = {"started_ns": pa.int64(), "detected_ns": pa.int64(),
                 "resolved_ns": pa.int64(), "updated_ns": pa.int64(), "written_ns": pa.int64()}
_SCHEMA: Final = pa.schema([(n, _TYPES.get(n, pa.string()))
                            for n in [*_NAMES, "updated_ns", "written_ns"]])
_ANOMALY_SCHEMA: Final = pa.schema(
    [(n, pa.int64() if n == "time_ns" else pa.float64() if n in ("value", "score")
      else pa.string()) for n in ANOMALY_COLUMNS] + [("received_ns", pa.int64())])
_EVENT_SCHEMA: Final = pa.schema([("incident_id", pa.string()), ("time_ns", pa.int64()),
                                  ("event", pa.string()), ("detail", pa.string()),
                                  ("added_ns", pa.int64())])


class ClickHouseIncidents:
    """Incident state on one ClickHouse database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _select(self, where: str, params: dict[str, Any], tail: str = "") -> list[Incident]:
        found = rows(self._engine.query(
            f"SELECT {INCIDENT_COLUMNS} FROM strata_incidents FINAL WHERE {where} {tail}",  # noqa: S608
            params))
        return [incident_from_row(r) for r in found]

    def events_of(self, incident_id: str) -> tuple[IncidentEvent, ...]:
        found = rows(self._engine.query(
            "SELECT time_ns, event, detail FROM strata_incident_events FINAL "
            "WHERE incident_id = {id:String} ORDER BY time_ns, added_ns", {"id": incident_id}))
        return tuple(IncidentEvent(int(t), str(e), str(d)) for t, e, d in found)

    def get_incident(self, incident_id: str, *, with_events: bool = True) -> Incident | None:
        found = self._select("id = {id:String}", {"id": incident_id})
        if not found:
            return None
        if not with_events:
            return found[0]
        return incident_from_row(_as_row(found[0]), self.events_of(incident_id))

    def list_incidents(self, *, status: str | None = None, service: str | None = None,
                       kind: str | None = None, since_ns: int | None = None,
                       until_ns: int | None = None, limit: int = 500) -> list[Incident]:
        """Incidents matching every filter, newest start first (as DuckDB's
        ``list_incidents``)."""
        return self._select(
            "({status:Nullable(String)} IS NULL OR status = {status:Nullable(String)}) AND "
            "({service:Nullable(String)} IS NULL OR service = {service:Nullable(String)}) AND "
            "({kind:Nullable(String)} IS NULL OR kind = {kind:Nullable(String)}) AND "
            "({lo:Nullable(Int64)} IS NULL OR started_ns >= {lo:Nullable(Int64)}) AND "
            "({hi:Nullable(Int64)} IS NULL OR started_ns < {hi:Nullable(Int64)})",
            {"status": status, "service": service, "kind": kind, "lo": since_ns,
             "hi": until_ns, "limit": limit},
            "ORDER BY started_ns DESC, id LIMIT {limit:Int64}")

    def open_incidents_between(self, since_ns: int, until_ns: int) -> list[Incident]:
        return self._select(
            "status IN ('open', 'acknowledged') AND started_ns >= {lo:Int64} "
            "AND started_ns < {hi:Int64}", {"lo": since_ns, "hi": until_ns},
            "ORDER BY started_ns, id")

    def insert_incident(self, incident: Incident, updated_ns: int) -> None:
        """Store *incident* as the newest version of its id.

        The version only grows: analysers stamp event time, operators wall time, so an
        update stamped earlier than the stored version would otherwise lose to it. The wall
        time of the write goes with it (``written_ns``: what the alert sender scans).
        """
        stored = rows(self._engine.query(
            "SELECT max(updated_ns), count() FROM strata_incidents WHERE id = {id:String}",
            {"id": incident.id}))
        if stored and stored[0][1]:
            updated_ns = max(updated_ns, int(stored[0][0]) + 1)
        self._engine.insert("strata_incidents", pa.Table.from_pylist(
            [dict(zip(_SCHEMA.names, [*incident_row(incident), updated_ns, time.time_ns()],
                      strict=True))],
            schema=_SCHEMA))

    update_incident = insert_incident  # a newer version of the same id replaces it

    def add_events(self, incident_id: str, events: Iterable[IncidentEvent]) -> int:
        known = set(self.events_of(incident_id))  # skip re-inserting, though harmless
        new = [e for e in dict.fromkeys(events) if e not in known]
        if new:
            now = time.time_ns()
            self._engine.insert("strata_incident_events", pa.Table.from_pylist([
                {"incident_id": incident_id, "time_ns": e.time_unix_nano, "event": e.event,
                 "detail": e.detail, "added_ns": now + i} for i, e in enumerate(new)],
                schema=_EVENT_SCHEMA))
        return len(new)

    def set_status(self, incident_id: str, status: str, *, time_ns: int,
                   detail: str) -> Incident | None:
        """An operator's ack or resolve, as ``strata.agent.store.incidents.set_status``."""
        current = self.get_incident(incident_id, with_events=False)
        if current is None:
            return None
        if current.status != status:
            resolved_ns = time_ns if status == "resolved" else current.resolved_at_ns
            changed = replace(current, status=status, resolved_at_ns=resolved_ns)
            self.update_incident(changed, time_ns)
            alerts.note(self._engine, [changed], time_ns)  # webhooks carry analysis only
            self.add_events(incident_id, [IncidentEvent(time_ns, status, detail)])
        return self.get_incident(incident_id)

    def insert_anomalies(self, rows: Sequence[Sequence[Any]]) -> None:
        """Insert scored buckets (``anomalies.ANOMALY_COLUMNS`` then ``received_ns``); a
        (series, bucket) stored twice collapses into one."""
        if rows:
            self._engine.insert("strata_anomalies", pa.Table.from_pylist(
                [dict(zip(_ANOMALY_SCHEMA.names, r, strict=True)) for r in rows],
                schema=_ANOMALY_SCHEMA))

    def advance_scored_until(self, scored_until_ns: int) -> None:
        """Move the scoring watermark forward (its value is its version: never back)."""
        self._engine.insert("strata_meta", pa.table({
            "key": [WATERMARK_KEY], "value": [str(scored_until_ns)],
            "set_ns": [scored_until_ns]}))

    def manually_resolved(self, incident_id: str) -> bool:
        found = rows(self._engine.query(
            "SELECT count() FROM strata_incident_events WHERE incident_id = {id:String} "
            "AND event = 'resolved' AND startsWith(detail, {manual:String})",
            {"id": incident_id, "manual": MANUAL_RESOLVE}))
        return bool(found and found[0][0])


def _as_row(incident: Incident) -> tuple[Any, ...]:
    return tuple(incident_row(incident))
