"""`strata hub`: a real hub process on chdb receives OTLP (200 only once stored), analyses
and serves the fleet API; a ClickHouse that fails or does not answer is a 503 with the
reason, never a hang."""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from strata.agent.api.app import create_hub_app
from strata.agent.config import Settings
from strata.agent.hub import Hub
from strata.agent.model import Incident
from strata.agent.store.clickhouse.engine import ClickHouseError, HttpEngine

from tests.agent.store.rows import MIN, T0, span
from tests.agent.test_grpc_receiver import TRACES, export
from tests.conftest import free_port, start_process, wait_ready
from tests.otlp_factory import gauge_request, genai_attributes, make_span, trace_request
from tests.waiting import wait_until

PROTOBUF = {"content-type": "application/x-protobuf"}


def test_hub_process_stores_before_200_analyses_and_serves(tmp_path: Path) -> None:
    otlp, grpc_port, api = free_port(), free_port(), free_port()
    args = [sys.executable, "-m", "strata.agent.cli", "hub", "--clickhouse",
            f"chdb:{tmp_path / 'ch'}", "--otlp-port", str(otlp), "--api-port", str(api),
            "--otlp-grpc-port", str(grpc_port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    log = tmp_path / "hub.log"
    process = start_process(args, env, log)
    api_url = f"http://127.0.0.1:{api}"
    try:
        wait_ready(api_url, process, log, 60)
        spans = [make_span(start_ns=1_700_000_000_000_000_000 + i * 10**9,
                           attributes=genai_attributes())
                 for i in range(3)]
        body = trace_request(spans, {"service.name": "rag-api", "service.version": "1.0",
                                     "team": "search"})
        reply = httpx.post(f"http://127.0.0.1:{otlp}/v1/traces",
                           content=body.SerializeToString(), headers=PROTOBUF, timeout=30)
        assert reply.status_code == 200
        # the 200 came after ClickHouse acknowledged the insert: readable at once
        counts = httpx.get(api_url + "/api/v1/health", timeout=30).json()["counts"]
        assert counts["spans"] == 3
        metric = gauge_request("DCGM_FI_DEV_GPU_TEMP", 61.0, 1_700_000_000_000_000_000,
                               labels={"gpu": "0", "UUID": "GPU-1", "Hostname": "n1"})
        reply = httpx.post(f"http://127.0.0.1:{otlp}/v1/metrics",
                           content=metric.SerializeToString(), headers=PROTOBUF, timeout=30)
        assert reply.status_code == 200
        assert httpx.get(api_url + "/api/v1/health", timeout=30).json()["counts"]["samples"] == 1
        analysed = httpx.post(api_url + "/api/v1/analyze", json={}, timeout=60)
        assert analysed.status_code == 200
        assert analysed.json()["new"] == []  # three requests: nothing to judge yet
        assert httpx.get(api_url + "/api/v1/incidents", timeout=30).json() == {"incidents": []}
        bad = httpx.post(f"http://127.0.0.1:{otlp}/v1/traces", content=b"\xff\x00junk",
                         headers=PROTOBUF, timeout=30)
        assert bad.status_code == 400
        assert httpx.get(api_url + "/api/v1/health", timeout=30).json()["counts"]["spans"] == 3
        # OTLP/gRPC: the same pipeline, stored before the reply
        grpc_spans = [make_span(start_ns=1_700_000_100_000_000_000,
                                attributes=genai_attributes())]
        export(f"127.0.0.1:{grpc_port}", TRACES, trace_request(
            grpc_spans, {"service.name": "rag-api", "team": "ops"}).SerializeToString())
        assert httpx.get(api_url + "/api/v1/health", timeout=30).json()["counts"]["spans"] == 4
        # priced at ingest, as on the agent: gpt-4o is in the packaged price table
        teams = httpx.get(api_url + "/api/v1/cost/teams", timeout=30, params={
            "since": "2023-11-01T00:00:00Z", "until": "2023-12-01T00:00:00Z"}).json()["teams"]
        assert {t["team"] for t in teams} == {"search", "ops"}
        assert all(t["usd"] is not None and t["usd"] > 0 for t in teams)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


@pytest.fixture(name="hub")
def hub_fixture(tmp_path: Path) -> Iterator[Hub]:
    hub = Hub(Settings(), f"chdb:{tmp_path / 'ch'}")
    yield hub
    hub.store.close()


def test_api_answers_503_with_the_reason_when_clickhouse_fails(hub: Hub) -> None:
    app = create_hub_app(hub)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/api/v1/health").status_code == 200
        hub.store.engine.close()  # the engine is gone: every read fails
        for path in ("/api/v1/health", "/api/v1/incidents", "/api/v1/incidents/x"):
            reply = client.get(path)
            assert reply.status_code == 503, path
            assert "ClickHouse unavailable" in reply.json()["detail"]
        assert client.post("/api/v1/analyze", json={}).status_code == 503


def test_a_server_that_never_answers_is_an_error_not_a_hang() -> None:
    with socket.socket() as silent:  # accepts connections, never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with pytest.raises(ClickHouseError, match="cannot reach ClickHouse"):
            HttpEngine(f"http://127.0.0.1:{port}", connect_timeout_s=1, query_timeout_s=1)


def test_operators_ack_and_resolve_on_the_hub(hub: Hub) -> None:
    incident = Incident(id="inc-1", kind="latency_regression", layer="model", service="svc",
                        host=None, status="open", severity="warning", started_at_ns=10,
                        detected_at_ns=20, resolved_at_ns=None, summary="slow", evidence=(),
                        suspected_cause=None, suggestion=None)
    with hub.store.incident_book() as book:
        book.insert_incident(incident, 20)  # stamped with event time, long before now
    with TestClient(create_hub_app(hub), base_url="http://127.0.0.1") as client:
        acked = client.post("/api/v1/incidents/inc-1/ack", json={"note": "on it"})
        assert acked.status_code == 200
        assert acked.json()["status"] == "acknowledged"
        resolved = client.post("/api/v1/incidents/inc-1/resolve").json()
        assert resolved["status"] == "resolved"
        assert client.post("/api/v1/incidents/inc-1/ack").status_code == 409
        assert client.post("/api/v1/incidents/nope/ack").status_code == 404
        with hub.store.incident_book() as book:  # before the app's shutdown closes the hub
            assert book.manually_resolved("inc-1")
            # a later analysis stamped with an older event time still supersedes the ack
            book.update_incident(replace(incident, summary="slower"), 30)
            found = book.get_incident("inc-1")
    assert found is not None
    assert found.summary == "slower"


def test_the_hub_analyses_data_it_did_not_receive(tmp_path: Path) -> None:
    """Rows a Collector or a sidecar's [forward.clickhouse] wrote are analysed too."""
    hub = Hub(Settings(analyze_interval_s=0.1), f"chdb:{tmp_path / 'ch'}")
    hub.store.write_batch([span(f"s{i}", i * 60, i * 60 + 1, operation="chat")
                           for i in range(5)])
    hub.start()
    try:
        wait_until(lambda: hub.last_report is not None, 30, "a periodic analysis")
        report = hub.last_report
        assert report is not None
        assert report.window_end_ns == T0 + 4 * MIN  # through the last complete minute
    finally:
        hub.close()


def test_the_hub_prices_at_ingest_and_keeps_a_sidecars_cost(hub: Hub) -> None:
    sidecar_priced = span("gpu", 0, 1, team="gpu", operation="chat", request_model="llama-70b",
                          attributes={"gen_ai.usage.cost.usd": 0.5, "strata.energy.wh": 2.0,
                                      "strata.energy.source": "measured"})
    hosted = span("api", 0, 1, team="api", operation="chat", provider="openai",
                  request_model="gpt-4o", input_tokens=1000, output_tokens=100)
    unknown = span("new", 0, 1, team="new", operation="chat", request_model="no-such-model",
                   input_tokens=10, output_tokens=1)
    hub.writer.start()
    hub.writer.write(spans=[sidecar_priced, hosted, unknown])
    found = {t: (n, usd) for t, n, usd in hub.store.cost_by_team(T0, T0 + MIN)}
    rates = hub.token_rates("openai", "gpt-4o")
    assert rates is not None
    assert found["gpu"] == (1, 0.5)  # the sidecar's figure, not dropped for an unknown model
    assert found["api"][1] == pytest.approx((1000 * rates[0] + 100 * rates[1]) / 1e6)
    assert found["new"] == (1, None)  # unpriced, never 0
    energy = hub.store.engine.query(
        "SELECT SpanId, EnergyWh, SpanAttributes['strata.energy.source'] FROM otel_traces "
        "WHERE SpanId = 'gpu'").to_pylist()
    assert energy == [{"SpanId": "gpu", "EnergyWh": 2.0,
                       "arrayElement(SpanAttributes, 'strata.energy.source')": "measured"}]
