"""GET /api/v1/traces (search) and /api/v1/traces/{trace_id} (span tree, each span with its
events and log records as ``logs``; records with no span of the trace under ``logs``)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Query
from strata.agent.api.render import MAX_NS, count_query, number_query, parse_time, rfc3339
from strata.agent.finops.coverage import energy_label
from strata.agent.store.seam import report_reads
from strata.agent.units import NS_PER_MS

if TYPE_CHECKING:
    from strata.agent.api.host import ApiHost

_TRACE_ID = re.compile(r"[0-9a-f]{32}")


def span_tree(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nest spans under their parents; spans whose parent is absent become roots."""
    by_id = {s["span_id"]: {**s, "children": []} for s in spans}
    roots: list[dict[str, Any]] = []
    for node in by_id.values():
        parent = by_id.get(node["parent_span_id"] or "")
        (parent["children"] if parent is not None else roots).append(node)
    return roots


def render_log(record: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k != "time_ns"}
    out["time"] = rfc3339(record["time_ns"])
    return out


def render_span(span: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in span.items() if k not in ("start_ns", "end_ns", "children")}
    out["start_time"] = rfc3339(span["start_ns"])
    out["end_time"] = rfc3339(span["end_ns"])
    out["duration_ms"] = span["duration_ns"] / NS_PER_MS
    out["children"] = [render_span(c) for c in span.get("children", [])]
    return out


def build_router(agent: ApiHost) -> APIRouter:
    router = APIRouter(tags=["traces"])

    @router.get("/api/v1/traces")
    def traces(
        service: str | None = None,
        model: str | None = None,
        status: str | None = Query(None, pattern="^(ok|error|unset)$"),
        min_duration_ms: float | None = number_query(None, ge=0, le=MAX_NS / NS_PER_MS),
        since: str | None = None,
        until: str | None = None,
        limit: int = count_query(100, le=1000),
    ) -> dict[str, Any]:
        """Trace summaries, newest first, filtered by service, model, status, minimum duration
        and time."""
        rows = report_reads(agent.store).list_traces(
            service=service,
            model=model,
            status=status,
            min_duration_ns=None if min_duration_ms is None else int(min_duration_ms * NS_PER_MS),
            since_ns=parse_time(since, "since"),
            until_ns=parse_time(until, "until"),
            limit=limit,
        )
        for row in rows:
            row["start_time"] = rfc3339(row.pop("start_ns"))
            row["duration_ms"] = row.pop("duration_ns") / NS_PER_MS
        return {"traces": rows}

    @router.get("/api/v1/traces/{trace_id}")
    def trace(trace_id: str) -> dict[str, Any]:
        """One trace as a span tree, each span with tokens, cost, energy, the layer samples
        correlated to it and its events and log records (``logs``); the trace's records
        that name none of its spans are in the top-level ``logs``."""
        if not _TRACE_ID.fullmatch(trace_id):
            raise HTTPException(400, "trace_id must be 32 lowercase hex characters")
        reads = report_reads(agent.store)
        spans = reads.trace_spans(trace_id)
        if not spans:
            raise HTTPException(404, f"trace {trace_id} not found")
        spans = agent.correlate(spans)
        logs: dict[str | None, list[dict[str, Any]]] = {}
        for record in reads.trace_logs(trace_id):
            logs.setdefault(record["span_id"], []).append(render_log(record))
        for span in spans:  # additive: whether the Wh figure is measured, estimated or unknown
            span["energy_status"], span["energy_note"] = energy_label(agent.prices, span)
            span["logs"] = logs.pop(span["span_id"], [])
        orphans = [r for records in logs.values() for r in records]
        return {"trace_id": trace_id, "span_count": len(spans),
                "spans": [render_span(s) for s in span_tree(spans)],
                "logs": sorted(orphans, key=lambda r: r["time"])}

    return router
