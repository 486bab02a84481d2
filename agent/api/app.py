"""create_app(agent): the FastAPI application serving the receiver and the local API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from strata.agent import __version__
from strata.agent.api import (
    anomalies,
    cost,
    deployments,
    health,
    incidents,
    metrics_api,
    metrics_endpoint,
    otlp,
    timeline,
    traces,
    ui,
)
from strata.agent.api import hub as hub_routes
from strata.agent.api.guard import GuardMiddleware
from strata.agent.store.clickhouse.engine import ClickHouseError

if TYPE_CHECKING:
    from strata.agent.hub import Hub
    from strata.agent.runner import Agent


def create_app(
    agent: Agent, *, before_close: Callable[[], Awaitable[None]] | None = None
) -> FastAPI:
    """The one ASGI app; the server binds it to the OTLP and API ports.

    The lifespan starts the agent's threads and closes the agent on shutdown, after the
    server has stopped accepting and finished in-flight requests, and after
    *before_close* (the gRPC receiver's drain) has returned.
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        agent.start()
        try:
            yield
        finally:
            try:
                if before_close is not None:
                    await before_close()
            finally:
                agent.close()

    app = FastAPI(title="Strata agent", version=__version__, lifespan=lifespan)
    for module in (health, otlp, traces, incidents, anomalies, deployments, cost, metrics_api,
                   timeline, metrics_endpoint, ui):
        app.include_router(module.build_router(agent))
    app.add_middleware(
        GuardMiddleware,
        token=agent.settings.api_token,
        read_token=agent.settings.api_read_token,
        otlp_ports=agent.otlp_ports,
        api_ports=agent.api_ports,
    )
    return app


# The agent's routers, served by the hub too, through the store seam; ``metrics_endpoint``:
# the hub's own receiver and writer counters and the fleet's derived metrics.
HUB_ROUTERS = (health, traces, incidents, anomalies, deployments, cost, metrics_api, timeline,
               metrics_endpoint, ui)


async def _clickhouse_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """A ClickHouse that is down, refusing or slower than the driver's timeout: 503 with the
    reason, on every route of the hub."""
    return JSONResponse({"detail": f"ClickHouse unavailable: {str(exc)[:300]}"}, status_code=503)


def create_hub_app(
    hub: Hub, *, before_close: Callable[[], Awaitable[None]] | None = None
) -> FastAPI:
    """``strata hub``'s app: the agent's OTLP receiver over the hub's writer, the agent's
    routers that go through the store seam (``HUB_ROUTERS``) and the hub's own (``hub``),
    behind the same guard. *before_close* as in ``create_app``."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        hub.start()
        try:
            yield
        finally:
            try:
                if before_close is not None:
                    await before_close()
            finally:
                hub.close()

    app = FastAPI(title="Strata hub", version=__version__, lifespan=lifespan)
    app.add_exception_handler(ClickHouseError, _clickhouse_unavailable)
    app.include_router(otlp.build_router(hub))
    for module in HUB_ROUTERS:
        app.include_router(module.build_router(hub))
    app.include_router(hub_routes.build_router(hub))
    app.add_middleware(GuardMiddleware, token=hub.settings.api_token,
                       read_token=hub.settings.api_read_token, otlp_ports=hub.otlp_ports,
                       api_ports=hub.api_ports)
    return app
