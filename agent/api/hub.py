"""The hub's API (``strata hub``): health, incidents, analysis and cost by team, read from
ClickHouse. A ClickHouse that is down, refusing or slower than the driver's timeout makes
every route answer 503 with the reason (``ClickHouseError``), never hang."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import APIRouter, Body, HTTPException, Query
from pydantic import BaseModel, Field
from strata.agent import __version__
from strata.agent.api.render import parse_time, rfc3339
from strata.agent.model import incident_json
from strata.agent.store.clickhouse.engine import ClickHouseError
from strata.agent.store.incidents import MANUAL_RESOLVE

if TYPE_CHECKING:
    from strata.agent.hub import Hub

T = TypeVar("T")
_STATUS = "^(open|acknowledged|resolved)$"


class StatusChange(BaseModel):  # the agent's ack/resolve body
    note: str | None = Field(None, max_length=500, description="Shown on the timeline.")


NoteBody = Annotated[StatusChange | None, Body()]


class AnalyzeRequest(BaseModel):  # the agent's POST /api/v1/analyze body
    now: str | None = Field(None, description="Event time to analyse up to (RFC 3339); "
                            "default: the latest stored.")


@contextmanager
def _available() -> Iterator[None]:
    try:
        yield
    except ClickHouseError as exc:
        raise HTTPException(503, f"ClickHouse unavailable: {str(exc)[:300]}") from None


def _read(fn: Callable[[], T]) -> T:
    with _available():
        return fn()


def build_router(hub: Hub) -> APIRouter:
    router = APIRouter(tags=["hub"])

    @router.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/api/v1/health")
    def health() -> dict[str, Any]:
        """Status, version and fleet counts; 503 when ClickHouse does not answer."""
        counts = _read(hub.store.counts)
        return {"status": "ok", "version": __version__, "role": "hub", "counts": counts,
                "write_queue": hub.writer.queued_items}

    @router.get("/api/v1/incidents")
    def incidents(status: str | None = Query(None, pattern=_STATUS),
                  service: str | None = None,
                  limit: int = Query(500, ge=1, le=5000)) -> dict[str, Any]:
        """The fleet's incidents, newest first."""
        with _available(), hub.store.incident_book() as book:
            found = book.list_incidents(status=status, service=service, limit=limit)
        return {"incidents": [incident_json(i) for i in found]}

    @router.get("/api/v1/incidents/{incident_id}")
    def incident(incident_id: str) -> dict[str, Any]:
        """One incident with its timeline."""
        with _available(), hub.store.incident_book() as book:
            found = book.get_incident(incident_id)
        if found is None:
            raise HTTPException(404, f"incident {incident_id[:80]} not found")
        return incident_json(found, timeline=True)

    def change(incident_id: str, status: str, detail: str) -> dict[str, Any]:
        with _available(), hub.store.incident_book() as book:
            current = book.get_incident(incident_id, with_events=False)
            if current is None:
                raise HTTPException(404, f"incident {incident_id[:80]} not found")
            if status == "acknowledged" and current.status == "resolved":
                raise HTTPException(409, f"incident {incident_id} is already resolved")
            updated = book.set_status(incident_id, status, time_ns=time.time_ns(),
                                      detail=detail)
        if updated is None:
            raise HTTPException(404, f"incident {incident_id[:80]} not found")
        return incident_json(updated, timeline=True)

    @router.post("/api/v1/incidents/{incident_id}/ack")
    def ack(incident_id: str, body: NoteBody = None) -> dict[str, Any]:
        """Acknowledge an open incident (409 if already resolved)."""
        note = body.note if body is not None and body.note else ""
        return change(incident_id, "acknowledged", f"acknowledged by operator {note}".strip())

    @router.post("/api/v1/incidents/{incident_id}/resolve")
    def resolve(incident_id: str, body: NoteBody = None) -> dict[str, Any]:
        """Resolve an incident (kept resolved by later analyses of every replica)."""
        note = body.note if body is not None and body.note else ""
        return change(incident_id, "resolved", f"{MANUAL_RESOLVE} {note}".strip())

    @router.post("/api/v1/analyze")
    def analyze(body: Annotated[AnalyzeRequest | None, Body()] = None) -> dict[str, Any]:
        """Run detection over the fleet now; idempotent across replicas."""
        now_ns = parse_time(body.now, "now") if body is not None else None
        report = _read(lambda: hub.analyze_once(now_ns, full=True))
        return {
            "window": {"start": rfc3339(report.window_start_ns),
                       "end": rfc3339(report.window_end_ns)},
            "findings": report.findings,
            "new": [incident_json(i) for i in report.new],
            "updated": [incident_json(i) for i in report.updated],
            "resolved": [incident_json(i) for i in report.resolved],
            "elapsed_s": round(report.elapsed_s, 3),
        }

    @router.get("/api/v1/cost/teams")
    def cost_by_team(since: str, until: str) -> dict[str, Any]:
        """Spans and stored cost per team over [since, until), most expensive first."""
        lo, hi = parse_time(since, "since"), parse_time(until, "until")
        if lo is None or hi is None:
            raise HTTPException(400, "since and until are required")
        found = _read(lambda: hub.store.cost_by_team(lo, hi))
        return {"teams": [{"team": t or None, "requests": n, "usd": c} for t, n, c in found]}

    return router
