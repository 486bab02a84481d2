"""GET /metrics served from a real Agent's private registry."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from strata.agent.api import metrics_endpoint
from strata.agent.config import Settings
from strata.agent.runner import Agent


def test_metrics_exposition(tmp_path: Path) -> None:
    agent = Agent(Settings(db=str(tmp_path / "a.duckdb"), gpu_enabled=False, host_enabled=False))
    try:
        app = FastAPI()
        app.include_router(metrics_endpoint.build_router(agent))
        agent.receiver_stats.requests = 3
        with TestClient(app) as client:
            reply = client.get("/metrics")
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/plain; version=")
        families = {f.name: f for f in text_string_to_metric_families(reply.text)}
        assert families["strata_receiver_requests"].samples[0].value == 3
        assert "process_resident_memory_bytes" in families
        assert "strata_store_rows" in families
        # a second app on the same process gets its own registry (no global state)
        other = FastAPI()
        other.include_router(metrics_endpoint.build_router(agent))
    finally:
        agent.close()
