"""The incidents and deployments API over a real store, through the ASGI app."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from strata.agent.analysis.analyzer import AnalysisReport, Analyzer
from strata.agent.api import deployments, incidents
from strata.agent.store.db import DuckDBStore

from tests.sim_data import START_NS, price, scenario

HOUR_NS = 3600 * 1_000_000_000


@dataclass
class AgentFacade:
    """The attributes the routers use (store, clock, analyze_once), on a real store."""

    store: DuckDBStore
    analyzer: Analyzer

    def clock(self) -> int:
        return START_NS + 40 * HOUR_NS

    def analyze_once(self, now_ns: int | None = None, *, full: bool = False) -> AnalysisReport:
        return self.analyzer.analyze(now_ns, full=full)


@pytest.fixture(name="client")
def client_fixture(tmp_path: Path):
    store = scenario().copy(tmp_path)
    facade = AgentFacade(store, Analyzer(store, price=price, lookback_ns=None))
    app = FastAPI()
    app.include_router(incidents.build_router(facade))  # type: ignore[arg-type]
    app.include_router(deployments.build_router(facade))  # type: ignore[arg-type]
    with TestClient(app) as client:
        yield client
    store.close()


def test_analyze_lists_shows_acks_and_resolves(client: TestClient) -> None:
    """POST /analyze is idempotent; list filters; show has a timeline; ack/resolve stick."""
    first = client.post("/api/v1/analyze", json={"now": "2026-01-01T12:00:00Z"}).json()
    assert first["new"]
    assert first["window"]["end"] == "2026-01-01T12:00:00Z"
    again = client.post("/api/v1/analyze", json={"now": "2026-01-01T12:00:00Z"}).json()
    assert (again["new"], again["updated"], again["resolved"]) == ([], [], [])

    listed = client.get("/api/v1/incidents").json()["incidents"]
    assert len(listed) == len(first["new"])
    inc = listed[0]
    assert set(inc) >= {"id", "kind", "layer", "service", "host", "status", "severity",
                        "started_at", "detected_at", "summary", "evidence", "suspected_cause",
                        "suggestion"}
    assert inc["started_at"].endswith("Z")
    assert client.get("/api/v1/incidents", params={"kind": inc["kind"]}).json()["incidents"]
    assert client.get("/api/v1/incidents", params={"status": "bogus"}).status_code == 422

    shown = client.get(f"/api/v1/incidents/{inc['id']}").json()
    assert shown["timeline"][0]["event"] == "opened"
    assert client.get("/api/v1/incidents/inc-nope").status_code == 404

    assert all(i["status"] == "resolved" for i in listed)  # every injection had ended
    assert client.post(f"/api/v1/incidents/{inc['id']}/ack").status_code == 409


def test_ack_and_resolve_of_an_open_incident(client: TestClient) -> None:
    """An open incident can be acknowledged (kept by re-analysis), then resolved by hand."""
    report = client.post("/api/v1/analyze", json={"now": "2026-01-01T07:10:00Z"}).json()
    open_ = [i for i in report["new"] if i["status"] == "open"]
    assert open_
    incident_id = open_[0]["id"]
    acked = client.post(f"/api/v1/incidents/{incident_id}/ack").json()
    assert acked["status"] == "acknowledged"
    assert acked["timeline"][-1]["event"] == "acknowledged"
    client.post("/api/v1/analyze", json={"now": "2026-01-01T07:12:00Z"})
    assert client.get(f"/api/v1/incidents/{incident_id}").json()["status"] == "acknowledged"
    resolved = client.post(f"/api/v1/incidents/{incident_id}/resolve",
                           json={"note": "fixed"}).json()
    assert resolved["status"] == "resolved"
    assert resolved["timeline"][-1]["detail"] == "resolved by operator fixed"
    client.post("/api/v1/analyze", json={"now": "2026-01-01T07:20:00Z"})
    assert client.get(f"/api/v1/incidents/{incident_id}").json()["status"] == "resolved"


def test_deployments_post_and_list(client: TestClient) -> None:
    """An explicit marker takes the previous version from what the store knows."""
    known = client.get("/api/v1/deployments", params={"service": "rag-api"}).json()
    assert known["deployments"]
    created = client.post("/api/v1/deployments", json={
        "service": "rag-api", "version": "9.9.9", "time": "2026-01-02T08:00:00Z",
        "description": "manual marker"})
    assert created.status_code == 201
    body = created.json()
    assert body["source"] == "explicit"
    assert body["previous_version"] is not None
    listed = client.get("/api/v1/deployments",
                        params={"service": "rag-api", "since": "2026-01-02T07:00:00Z"}).json()
    assert [d["version"] for d in listed["deployments"]] == ["9.9.9"]
    assert client.post("/api/v1/deployments", json={"service": "x"}).status_code == 422
