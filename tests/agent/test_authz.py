"""Authorisation scopes: a read-scope token can read but never change anything (RELIABILITY
S5, after Langfuse CVE-2025-59305: checking login is not checking role)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from strata.agent.api.app import create_app
from strata.agent.api.guard import GuardMiddleware
from strata.agent.config import Settings
from strata.agent.runner import Agent

ADMIN, READER = "admin-token-s5", "read-token-s5"
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


async def echo(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_guard_scopes(anyio_backend: str) -> None:
    """S5: the admin token may do anything; the read token GETs but gets 403 on every
    state-changing method; a wrong token is 401."""
    guard = GuardMiddleware(echo, token=ADMIN, read_token=READER, otlp_ports=set(),
                            api_ports=set())
    transport = httpx.ASGITransport(app=guard)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for method in ("GET", "HEAD", *sorted(MUTATING)):
            admin = await client.request(method, "/api/v1/x",
                                         headers={"Authorization": f"Bearer {ADMIN}"})
            assert admin.status_code == 200, method
            read = await client.request(method, "/api/v1/x",
                                        headers={"Authorization": f"Bearer {READER}"})
            assert read.status_code == (200 if method in ("GET", "HEAD") else 403), method
            wrong = await client.request(method, "/api/v1/x",
                                         headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401


@pytest.fixture(name="client")
def client_fixture(tmp_path: Path) -> Iterator[tuple[TestClient, list[tuple[str, str]]]]:
    settings = Settings(db=str(tmp_path / "a.duckdb"), api_token=ADMIN, api_read_token=READER,
                        gpu_enabled=False, host_enabled=False)
    agent = Agent(settings)
    app = create_app(agent)
    routes = sorted((method.upper(), path) for path, item in app.openapi()["paths"].items()
                    for method in item if method.upper() in MUTATING)
    with TestClient(app) as client:
        yield client, routes


def test_every_mutating_route_refuses_the_read_token(
    client: tuple[TestClient, list[tuple[str, str]]],
) -> None:
    """S5: every POST/PUT/PATCH/DELETE route of the app answers 403 to a read-scope token,
    while GET /api/v1/health answers it; the list comes from the app's OpenAPI paths, so new
    routes are covered."""
    test_client, routes = client
    assert ("POST", "/api/v1/analyze") in routes
    read = {"Authorization": f"Bearer {READER}"}
    assert test_client.get("/api/v1/health", headers=read).status_code == 200
    for method, path in routes:
        url = path.replace("{", "x").replace("}", "")
        reply = test_client.request(method, url, headers=read, json={})
        assert reply.status_code == 403, (method, path, reply.status_code)
