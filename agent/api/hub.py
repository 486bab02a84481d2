"""The hub's own routes (``strata hub``): what only the fleet has. The agent's routers that
read through the store seam are served by the hub as well (``app.HUB_ROUTERS``); a
ClickHouse that is down or slow is a 503 with the reason on every route (``app``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException
from strata.agent.api.render import parse_time

if TYPE_CHECKING:
    from strata.agent.hub import Hub


def build_router(hub: Hub) -> APIRouter:
    router = APIRouter(tags=["hub"])

    @router.get("/api/v1/cost/teams")
    def cost_by_team(since: str, until: str) -> dict[str, Any]:
        """Spans and stored cost per team over [since, until), most expensive first."""
        lo, hi = parse_time(since, "since"), parse_time(until, "until")
        if lo is None or hi is None:
            raise HTTPException(400, "since and until are required")
        found = hub.store.cost_by_team(lo, hi)
        return {"teams": [{"team": t or None, "requests": n, "usd": c} for t, n, c in found]}

    return router
