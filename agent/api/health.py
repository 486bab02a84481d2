"""GET /api/v1/health and the unauthenticated, data-free /healthz."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from strata.agent import __version__

if TYPE_CHECKING:
    from strata.agent.api.host import ApiHost


def build_router(agent: ApiHost) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/api/v1/health")
    def health() -> dict[str, Any]:
        """Status, version, role (``agent`` or ``hub``) and store counts (spans, samples,
        incidents, deployments)."""
        counts = agent.store.counts()
        return {
            "status": "ok",
            "version": __version__,
            "role": agent.role,
            "counts": {k: counts[k] for k in ("spans", "samples", "incidents", "deployments")},
            "write_queue": agent.writer.queued_items,
            "capture_content": agent.settings.capture_content,
        }

    return router
