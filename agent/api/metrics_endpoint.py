"""GET /metrics: Prometheus exposition of the agent's health and derived layer metrics.

A private ``CollectorRegistry`` per app (never prometheus_client's global one) holding
``strata.exporters.prometheus.StrataCollector`` and the process collector (RSS, CPU, open fds).
Served on the API port; the handler is synchronous so the store queries run in the
threadpool, off the event loop. ``strata hub`` serves it too, over ClickHouse: the same
families less those it has no source for (collectors, forwarders).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector
from prometheus_client.exposition import generate_latest
from strata.agent.hub import Hub
from strata.agent.logs import dropped_records
from strata.agent.store.seam import metrics_reads
from strata.exporters.prometheus import StrataCollector

if TYPE_CHECKING:
    from strata.agent.runner import Agent


def build_registry(agent: Agent | Hub) -> CollectorRegistry:
    """The private registry for *agent* (or the hub): StrataCollector plus process metrics."""
    exporters = None if isinstance(agent, Hub) else agent.exporters
    webhooks = agent.webhooks if isinstance(agent, Hub) else agent.exporters.webhooks
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StrataCollector(
        metrics_reads(agent.store),
        receiver=agent.receiver_stats,
        writer=agent.writer.stats,
        writer_queue=lambda: agent.writer.queued_items,
        forwarder=exporters.forwarder if exporters else None,
        clickhouse=exporters.clickhouse if exporters else None,
        webhooks=webhooks,
        log_dropped=dropped_records,
        clock=agent.clock,
    ))
    ProcessCollector(registry=registry)
    return registry


def build_router(agent: Agent | Hub) -> APIRouter:
    router = APIRouter(tags=["metrics"])
    registry = build_registry(agent)

    @router.get("/metrics", summary="Prometheus exposition", response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
