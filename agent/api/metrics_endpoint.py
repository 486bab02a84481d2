"""GET /metrics: Prometheus exposition of the agent's health and derived layer metrics.

A private ``CollectorRegistry`` per app (never prometheus_client's global one) holding
``strata.exporters.prometheus.StrataCollector`` and the process collector (RSS, CPU, open fds).
Served on the API port; the handler is synchronous so the store queries run in the
threadpool, off the event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector
from prometheus_client.exposition import generate_latest
from strata.agent.logs import dropped_records
from strata.exporters.prometheus import StrataCollector

if TYPE_CHECKING:
    from strata.agent.runner import Agent


def build_registry(agent: Agent) -> CollectorRegistry:
    """The private registry for *agent*: StrataCollector plus process metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StrataCollector(
        agent.store,
        receiver=agent.receiver_stats,
        writer=agent.writer.stats,
        writer_queue=lambda: agent.writer.queued_items,
        forwarder=agent.exporters.forwarder,
        clickhouse=agent.exporters.clickhouse,
        webhooks=agent.exporters.webhooks,
        log_dropped=dropped_records,
        clock=agent.clock,
    ))
    ProcessCollector(registry=registry)
    return registry


def build_router(agent: Agent) -> APIRouter:
    router = APIRouter(tags=["metrics"])
    registry = build_registry(agent)

    @router.get("/metrics", summary="Prometheus exposition", response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
