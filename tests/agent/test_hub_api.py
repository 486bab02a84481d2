"""The agent's API routers served by ``strata hub`` over ClickHouse (chdb): the same data in
an agent's DuckDB and in the hub's ClickHouse gives the same answers over HTTP; a ClickHouse
that fails is a 503 on every route."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from strata.agent.api.app import create_app, create_hub_app
from strata.agent.api.render import rfc3339
from strata.agent.config import Budget, Settings
from strata.agent.hub import Hub
from strata.agent.runner import Agent

from tests.agent.store.rows import HOUR, T0, TRACE_A, TRACE_B, S, sample, span
from tests.agent.store.test_clickhouse import _data

SINCE, UNTIL = str(T0), str(T0 + HOUR)
NOW = T0 + HOUR  # the clock of both apps (budgets: this month's spend and burn)
ADMIN, READER = "admin-token-hub", "read-token-hub"


@pytest.fixture(name="pair")
def pair_fixture(tmp_path: Path) -> Iterator[tuple[Agent, Hub]]:
    """An agent and a hub holding the same spans, samples, logs and deployments."""
    budgets = (Budget("team", "search", 0.05), Budget("service", "other", 100.0))
    agent = Agent(Settings(db=str(tmp_path / "agent.duckdb"), budgets=budgets),
                  clock=lambda: NOW)
    hub = Hub(Settings(budgets=budgets), f"chdb:{tmp_path / 'ch'}")
    hub.clock = lambda: NOW
    spans, samples, deployments = _data()
    samples += [sample("DCGM_FI_DEV_GPU_TEMP", 70.0 + t, 11 * 60 + t / 2,  # during span "x"
                       canonical="gpu.temperature", host="gpu-node-1", device="GPU-1",
                       attributes={"modelName": "H100"}) for t in range(3)]
    samples += [sample("DCGM_FI_DEV_GPU_UTIL", 2.0, t * 300, canonical="gpu.utilization",
                       unit="%", host="gpu-node-1", device="GPU-1") for t in range(12)]
    spans = [replace(s, attributes={**s.attributes, "user.id": f"u{i % 2}",
                                    **({"gpu.uuid": "GPU-1"} if s.span_id == "x" else {})})
             for i, s in enumerate(spans)]
    costs = [(0.01 * i, "token_price", 0.1 * i, "estimated", 0.02 * i) if i % 2 else (None,) * 5
             for i in range(len(spans))]
    for store in (agent.store, hub.store):
        store.write_batch(spans, samples, deployments, received_ns=1, costs=costs)
    try:
        yield agent, hub
    finally:
        agent.close()
        hub.close()


@pytest.fixture(name="clients")
def clients_fixture(pair: tuple[Agent, Hub]) -> tuple[TestClient, TestClient, Hub]:
    """(agent, hub, hub) over *pair*; the apps' lifespans are not run, so no background
    thread writes or analyses."""
    agent, hub = pair
    return (TestClient(create_app(agent), base_url="http://127.0.0.1"),
            TestClient(create_hub_app(hub), base_url="http://127.0.0.1"), hub)


def _plain(value: Any, *, drop: frozenset[str] = frozenset()) -> Any:
    """JSON with floats to 9 significant digits and the *drop* keys removed, at any depth."""
    if isinstance(value, dict):
        return {k: _plain(v, drop=drop) for k, v in value.items() if k not in drop}
    if isinstance(value, list):
        return [_plain(v, drop=drop) for v in value]
    if isinstance(value, float):
        return float(f"{value:.9g}") if math.isfinite(value) else value
    return value


def _same(agent: TestClient, hub: TestClient, path: str, params: dict[str, str] | None = None,
          drop: frozenset[str] = frozenset()) -> Any:
    expected, found = agent.get(path, params=params), hub.get(path, params=params)
    assert expected.status_code == found.status_code == 200, (path, found.text)
    assert _plain(found.json(), drop=drop) == _plain(expected.json(), drop=drop), path
    return found.json()


def test_traces_deployments_and_cost_match_the_agent(
        clients: tuple[TestClient, TestClient, Hub]) -> None:
    agent, hub, _ = clients
    listed = _same(agent, hub, "/api/v1/traces")
    assert [t["trace_id"] for t in listed["traces"]] == [TRACE_B, TRACE_A]
    _same(agent, hub, "/api/v1/traces", {"service": "rag-api", "status": "error"})
    _same(agent, hub, "/api/v1/traces", {"model": "gpt-4o", "min_duration_ms": "1500"})
    # attributes: the hub's are strings and carry the promoted GenAI keys
    tree = _same(agent, hub, f"/api/v1/traces/{TRACE_A}", drop=frozenset({"attributes"}))
    assert tree["span_count"] == 13
    on_gpu = _same(agent, hub, f"/api/v1/traces/{TRACE_B}", drop=frozenset({"attributes"}))
    correlated = on_gpu["spans"][0]["correlated"]["infrastructure"]
    assert {c["signal"] for c in correlated} >= {"gpu.temperature"}  # the GPU node's samples
    assert hub.get(f"/api/v1/traces/{'f' * 32}").status_code == 404
    assert hub.get("/api/v1/traces/not-hex").status_code == 400
    _same(agent, hub, "/api/v1/deployments")
    _same(agent, hub, "/api/v1/deployments", {"service": "rag-api", "since": SINCE})
    window = {"since": SINCE, "until": UNTIL}
    for params in ({}, {"group_by": "team"}, {"group_by": "model", "bucket": "5m"},
                   {"group_by": "user", "service": "rag-api"},
                   {"group_by": "server.address", "attr.user.id": "u1"}):
        body = _same(agent, hub, "/api/v1/cost", {**window, **params})
        assert body["totals"]["requests"] > 0
    assert hub.get("/api/v1/cost", params={**window, "group_by": "a b"}).status_code == 400
    idle = _same(agent, hub, "/api/v1/cost/rightsizing", {**window, "min_hours": "1"})
    assert [f["device"] for f in idle["findings"] if f["kind"] == "gpu_idle"] == ["GPU-1"]
    timeline = _same(agent, hub, "/api/v1/services/other/timeline",
                     {**window, "step": "1m"})
    assert {(s["layer"], s["signal"]) for s in timeline["series"]} >= {
        ("orchestration", "requests"), ("infrastructure", "gpu.temperature")}
    _same(agent, hub, "/api/v1/services/rag-api/timeline", {**window, "step": "5m"})
    for params in ({}, {"layer": "infrastructure", "host": "gpu-node-1"},
                   {"name": "gpu.temperature", "modelName": "H100"}, {"service": "vllm"},
                   {"limit": "1"}):
        metrics = _same(agent, hub, "/api/v1/metrics", {**window, **params})
        assert metrics["series"], params
    assert hub.get("/api/v1/metrics", params={**window, "a b": "1"}).status_code == 400
    budgets = _same(agent, hub, "/api/v1/budgets")["budgets"]
    assert [(b["value"], b["will_exceed"]) for b in budgets] == [("search", True),
                                                                ("other", False)]


def test_a_deployment_marker_posted_to_the_hub_is_listed(
        clients: tuple[TestClient, TestClient, Hub]) -> None:
    _, hub, _ = clients
    added = hub.post("/api/v1/deployments", json={"service": "rag-api", "version": "1.2",
                                                  "time": str(T0 + 20 * 60 * 10**9)})
    assert added.status_code == 201
    assert added.json()["previous_version"] == "1.1"  # the last known one, from ClickHouse
    listed = hub.get("/api/v1/deployments", params={"service": "rag-api"}).json()
    assert [(d["version"], d["source"]) for d in listed["deployments"]] == [
        ("1.2", "explicit"), ("1.1", "service.version")]


def test_energy_matches_the_agent_and_measures_each_gpu_counter(
        pair: tuple[Agent, Hub], clients: tuple[TestClient, TestClient, Hub]) -> None:
    """Spans a sidecar priced (measured GPU energy), spans nobody could price, and GPU
    counters: the hub's energy view equals the agent's on the same data, except the GPU
    rows (measured by ClickHouse from the counter; the split is the sidecars') and the
    reason for a GPU-served request without energy."""
    agent, hub, owner = clients
    carried = {"gen_ai.usage.cost.usd": "0.002", "strata.energy.wh": "0.5",
               "strata.energy.source": "measured", "strata.co2e.g": "0.2"}
    spans = [
        span("g1", 60, 70, trace="1" * 32, service="chat", request_model="llama-3.1-8b",
             provider="vllm", host="app-1", output_tokens=40,
             attributes={"server.address": "gpu-node-2", **carried}),
        span("g2", 80, 90, trace="2" * 32, service="chat", request_model="llama-3.1-8b",
             provider="vllm", host="app-1", output_tokens=40,
             attributes={"server.address": "gpu-node-2"}),  # no sidecar priced it
        span("m1", 100, 101, trace="3" * 32, service="chat", request_model="mystery-9",
             provider="acme", host="app-1", output_tokens=3),
        span("n1", 110, 111, trace="4" * 32, service="other", request_model="llama-local",
             provider="vllm", host="gpu-node-1", output_tokens=3),  # GPU-1: no counter
    ]
    # gpu-node-2's counter in J: +1 Wh, +2 Wh, a reset (+0.5 Wh: the new reading), +1 Wh
    counter = [sample("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", v, t, unit="J",
                      canonical="gpu.energy.consumed", host="gpu-node-2", device="GPU-2")
               for t, v in ((0, 3600.0), (60, 7200.0), (120, 14400.0), (180, 1800.0),
                            (240, 5400.0))]
    costs = owner.price_at_ingest(spans)  # the hub's ingest keeps what the sidecar attached
    assert costs[0] == (0.002, None, 0.5, "measured", 0.2)
    for store in (pair[0].store, owner.store):
        store.write_batch(spans, counter, received_ns=2, costs=costs)
    window = {"since": SINCE, "until": UNTIL}
    expected = agent.get("/api/v1/energy", params=window).json()
    body = hub.get("/api/v1/energy", params=window)
    assert body.status_code == 200, body.text
    found = body.json()
    for key in ("group_by", "since", "until", "carbon", "totals", "groups", "coverage"):
        assert _plain(found[key]) == _plain(expected[key]), key
    chat = {g["group"]: g for g in found["groups"]}["chat"]
    assert (chat["requests"], chat["energy_wh_measured"]) == (3, pytest.approx(0.5))
    assert expected["gpus"] == []  # the agent's come from its GPU pass, not run here
    assert found["gpus"] == [{
        "host": "gpu-node-2", "device": "GPU-2", "intervals": 4,
        "measured_wh": pytest.approx(4.5), "attributed_wh": None, "idle_wh": None,
        "counter_resets": 1, "start_time": rfc3339(T0), "end_time": rfc3339(T0 + 240 * S),
        "idle_s": None}]
    assert list(found["gpus"][0]) == ["host", "device", "intervals", "measured_wh",
                                      "attributed_wh", "idle_wh", "counter_resets",
                                      "start_time", "end_time", "idle_s"]
    reasons = {g["model"]: g["reason"] for g in found["unattributed"]}
    assert "not in the price table" in reasons["mystery-9"]
    assert "(gpu-node-1) report no energy counter" in reasons["llama-local"]
    assert "sidecar" in reasons["llama-3.1-8b"]
    agent_reasons = {g["model"]: g["reason"] for g in expected["unattributed"]}
    assert "GPU pass has not run" in agent_reasons.pop("llama-3.1-8b")
    assert agent_reasons == {m: r for m, r in reasons.items() if m != "llama-3.1-8b"}
    assert [(g["model"], g["requests"], g["server_address"]) for g in found["unattributed"]
            ] == [(g["model"], g["requests"], g["server_address"])
                  for g in expected["unattributed"]]
    assert hub.get("/api/v1/energy", params={**window, "group_by": "a b"}).status_code == 400


def test_every_hub_read_is_a_503_when_clickhouse_fails(
        clients: tuple[TestClient, TestClient, Hub]) -> None:
    _, hub, store_owner = clients
    store_owner.store.engine.close()
    for path in ("/api/v1/traces", f"/api/v1/traces/{TRACE_A}", "/api/v1/deployments",
                 f"/api/v1/cost?since={SINCE}&until={UNTIL}", "/api/v1/incidents"):
        reply = hub.get(path)
        assert reply.status_code == 503, path
        assert "ClickHouse unavailable" in reply.json()["detail"]
    posted = hub.post("/api/v1/deployments", json={"service": "s", "version": "2"})
    assert posted.status_code == 503


def test_the_hubs_analysis_stores_each_budget_alert_once(
        clients: tuple[TestClient, TestClient, Hub]) -> None:
    _, client, hub = clients
    for _ in range(2):
        hub.analyze_once()
    alerts = client.get("/api/v1/incidents", params={"kind": "budget_burn"}).json()
    assert [(i["summary"].split(":")[0], i["status"]) for i in alerts["incidents"]] == [
        ("budget team=search", "open")]


def test_every_hub_route_needs_the_token_and_the_read_token_only_reads(
        tmp_path: Path) -> None:
    hub = Hub(Settings(api_token=ADMIN, api_read_token=READER), f"chdb:{tmp_path / 'ch'}")
    app = create_hub_app(hub)
    paths = app.openapi()["paths"]
    client = TestClient(app, base_url="http://127.0.0.1")
    try:
        assert len(paths) > 15  # the agent's routes, not only the hub's own
        for path, item in paths.items():
            url = path.replace("{incident_id}", "x").replace("{trace_id}", "f" * 32).replace(
                "{service}", "svc")
            for method in item:
                assert client.request(method, url).status_code == 401, (method, path)
                reader = client.request(method, url, headers={
                    "Authorization": f"Bearer {READER}"})
                if method.upper() == "GET":
                    assert reader.status_code != 401, path
                else:
                    assert reader.status_code == 403, (method, path)
    finally:
        hub.close()
