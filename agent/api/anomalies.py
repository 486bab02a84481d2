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
from strata.agent.api.render import parse_time, rfc3339

if TYPE_CHECKING:
    from strata.agent.runner import Agent

_LAYERS = "^(infrastructure|data|serving|model|orchestration)$"
_COLUMNS = ("series", "time_ns", "layer", "signal", "unit", "service", "host", "device",
            "labels", "value", "score")


def build_router(agent: Agent) -> APIRouter:
    router = APIRouter(tags=["anomalies"])

    @router.get("/api/v1/anomalies")
    def anomalies(
        service: str | None = None,
        host: str | None = None,
        layer: str | None = Query(None, pattern=_LAYERS),
        signal: str | None = None,
        min_score: float = Query(0.0, ge=0.0, le=1.0),
        since: str | None = None,
        until: str | None = None,
        limit: int = Query(200, ge=1, le=5000),
    ) -> dict[str, Any]:
        """Scored anomalies (bucket, series, value, score), filtered; newest first."""
        filters = {"service": service, "host": host, "layer": layer, "signal": signal}
        where = [f"{column} = ${column}" for column, value in filters.items() if value]
        params: dict[str, Any] = {k: v for k, v in filters.items() if v}
        where.append("score >= $min_score")
        params["min_score"] = min_score
        since_ns, until_ns = parse_time(since, "since"), parse_time(until, "until")
        if since_ns is not None:
            where.append("time_ns >= $since")
            params["since"] = since_ns
        if until_ns is not None:
            where.append("time_ns < $until")
            params["until"] = until_ns
        params["limit"] = limit
        rows = agent.store.cursor().execute(
            f"SELECT {', '.join(_COLUMNS)} FROM anomalies WHERE {' AND '.join(where)} "  # noqa: S608 - fixed column names; values bound
            "ORDER BY time_ns DESC, score DESC, series LIMIT $limit",
            params,
        ).fetchall()
        return {"anomalies": [_render(dict(zip(_COLUMNS, row, strict=True))) for row in rows]}

    return router


def _render(row: dict[str, Any]) -> dict[str, Any]:
    row["time"] = rfc3339(row.pop("time_ns"))
    row["labels"] = json.loads(row["labels"])
    return row
