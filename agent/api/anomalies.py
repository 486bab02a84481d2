"""GET /api/v1/anomalies: buckets of any series that the streaming scorer flagged.

Every collected metric series and every derived per-service signal is scored by
``strata.analytics.AnomalyScorer`` as analysis advances (``strata.agent.analysis.series_scoring``);
the buckets at or
above ``[anomaly] threshold`` are listed here, newest first. They are signals to look at, not
incidents: incidents come from the regression detectors.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Query
from strata.agent.api.render import count_query, number_query, parse_time, rfc3339
from strata.agent.store.seam import report_reads

if TYPE_CHECKING:
    from strata.agent.api.host import ApiHost

_LAYERS = "^(infrastructure|data|serving|model|orchestration)$"


def build_router(agent: ApiHost) -> APIRouter:
    router = APIRouter(tags=["anomalies"])

    @router.get("/api/v1/anomalies")
    def anomalies(
        service: str | None = None,
        host: str | None = None,
        layer: str | None = Query(None, pattern=_LAYERS),
        signal: str | None = None,
        min_score: float = number_query(0.0, ge=0.0, le=1.0),
        since: str | None = None,
        until: str | None = None,
        limit: int = count_query(200, le=5000),
    ) -> dict[str, Any]:
        """Scored anomalies (bucket, series, value, score), filtered; newest first."""
        rows = report_reads(agent.store).list_anomalies(
            service=service, host=host, layer=layer, signal=signal,
            min_score=min_score, since_ns=parse_time(since, "since"),
            until_ns=parse_time(until, "until"), limit=limit)
        return {"anomalies": [_render(row) for row in rows]}

    return router


def _render(row: dict[str, Any]) -> dict[str, Any]:
    row["time"] = rfc3339(row.pop("time_ns"))
    row["labels"] = json.loads(row["labels"])
    return row
