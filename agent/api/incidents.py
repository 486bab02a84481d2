"""Incidents API: list, show, acknowledge, resolve, and POST /api/v1/analyze.

One copy for the agent and the hub: incident state is read and changed through the store
seam's ``IncidentBook`` (a DuckDB transaction, or ClickHouse's replacing tables)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query
from pydantic import BaseModel, Field
from strata.agent.api.render import count_query, parse_time, rfc3339
from strata.agent.model import incident_json
from strata.agent.store.incidents import MANUAL_RESOLVE
from strata.agent.store.seam import incident_book

if TYPE_CHECKING:
    from strata.agent.api.host import ApiHost

_STATUS = "^(open|acknowledged|resolved)$"


class StatusChange(BaseModel):
    note: str | None = Field(None, max_length=500, description="Shown on the timeline.")


class AnalyzeRequest(BaseModel):
    now: str | None = Field(None, description="Event time to analyse up to (RFC 3339); "
                            "default: the latest stored.")


NoteBody = Annotated[StatusChange | None, Body()]


render_incident = incident_json


def build_router(agent: ApiHost) -> APIRouter:
    router = APIRouter(tags=["incidents"])

    @router.get("/api/v1/incidents")
    def incidents(
        status: str | None = Query(None, pattern=_STATUS),
        service: str | None = None,
        kind: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = count_query(500, le=5000),
    ) -> dict[str, Any]:
        """Incidents, filtered by status, service, kind and time."""
        since_ns, until_ns = parse_time(since, "since"), parse_time(until, "until")
        with incident_book(agent.store) as book:
            rows = book.list_incidents(status=status, service=service, kind=kind,
                                       since_ns=since_ns, until_ns=until_ns, limit=limit)
        return {"incidents": [render_incident(i) for i in rows]}

    @router.get("/api/v1/incidents/{incident_id}")
    def incident(incident_id: str) -> dict[str, Any]:
        """One incident with its evidence, cause, suggestion and timeline of events."""
        with incident_book(agent.store) as book:
            found = book.get_incident(incident_id)
        if found is None:
            raise HTTPException(404, f"incident {incident_id[:80]} not found")
        return render_incident(found, timeline=True)

    def change(incident_id: str, status: str, detail: str) -> dict[str, Any]:
        with incident_book(agent.store) as book:
            current = book.get_incident(incident_id, with_events=False)
            if current is None:
                raise HTTPException(404, f"incident {incident_id[:80]} not found")
            if status == "acknowledged" and current.status == "resolved":
                raise HTTPException(409, f"incident {incident_id} is already resolved")
            updated = book.set_status(incident_id, status, time_ns=agent.clock(),
                                      detail=detail)
        if updated is None:  # (no transaction spans the two reads on ClickHouse)
            raise HTTPException(404, f"incident {incident_id[:80]} not found")
        return render_incident(updated, timeline=True)

    @router.post("/api/v1/incidents/{incident_id}/ack")
    def ack(incident_id: str, body: NoteBody = None) -> dict[str, Any]:
        """Acknowledge an open incident (409 if already resolved)."""
        note = body.note if body is not None and body.note else ""
        return change(incident_id, "acknowledged", f"acknowledged by operator {note}".strip())

    @router.post("/api/v1/incidents/{incident_id}/resolve")
    def resolve(incident_id: str, body: NoteBody = None) -> dict[str, Any]:
        """Resolve an incident (kept resolved by later analyses)."""
        note = body.note if body is not None and body.note else ""
        return change(incident_id, "resolved", f"{MANUAL_RESOLVE} {note}".strip())

    @router.post("/api/v1/analyze")
    def analyze(body: Annotated[AnalyzeRequest | None, Body()] = None) -> dict[str, Any]:
        """Run detection now over everything stored; idempotent (no duplicate incidents).
        Returns when done."""
        now_ns = parse_time(body.now, "now") if body is not None else None
        report = agent.analyze_once(now_ns, full=True)
        return {
            "window": {"start": rfc3339(report.window_start_ns),
                       "end": rfc3339(report.window_end_ns)},
            "findings": report.findings,
            "new": [render_incident(i) for i in report.new],
            "updated": [render_incident(i) for i in report.updated],
            "resolved": [render_incident(i) for i in report.resolved],
            "anomalies": report.anomalies,
            "elapsed_s": round(report.elapsed_s, 3),
        }

    return router
