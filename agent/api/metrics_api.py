"""GET /api/v1/metrics: stored metric series as JSON (DESIGN.md's contract).

``{"series": [{"name", "canonical", "layer", "unit", "labels": {...}, "host", "device",
"service", "points": [[time, value], ...]}], "truncated": bool}``; names as received with the
canonical name alongside. Any query parameter other than ``layer``, ``name``, ``since``,
``until`` and ``limit`` filters on a label (or on ``host``/``device``/``service``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from fastapi import APIRouter, HTTPException, Query, Request
from strata.agent.api.render import count_query, rfc3339, time_range
from strata.agent.model import Layer
from strata.agent.store.seam import report_reads
from strata.agent.units import HOUR_NS

if TYPE_CHECKING:
    from strata.agent.api.host import ApiHost


RESERVED: Final = frozenset({"layer", "name", "since", "until", "limit"})
DEFAULT_RANGE_NS: Final = HOUR_NS


def build_router(agent: ApiHost) -> APIRouter:
    router = APIRouter(tags=["metrics"])

    @router.get("/api/v1/metrics")
    def metrics(
        request: Request,
        layer: str | None = Query(None, pattern="^(" + "|".join(Layer) + ")$"),
        name: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = count_query(1000, le=10_000),
    ) -> dict[str, Any]:
        """Stored metric series by layer, name (as received or canonical), time and labels."""
        if since is None:
            _, until_ns = time_range(agent, None, until)
            since_ns = max(0, until_ns - DEFAULT_RANGE_NS)
        else:
            since_ns, until_ns = time_range(agent, since, until)
        labels = {k: v for k, v in request.query_params.items() if k not in RESERVED}
        try:
            series, truncated = report_reads(agent.store).metric_series(
                since_ns=since_ns, until_ns=until_ns, layer=layer,
                name=name, labels=labels, max_series=limit,
            )
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        for s in series:
            s["points"] = [[rfc3339(t), v] for t, v in s["points"]]
        return {"since": rfc3339(since_ns), "until": rfc3339(until_ns), "series": series,
                "truncated": truncated}

    return router
