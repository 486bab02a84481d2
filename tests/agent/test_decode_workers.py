"""Trace bodies decoded in worker processes (``[agent] decode_workers``): the same replies,
records, prices and deployments as decoding in the agent; a worker killed with SIGKILL costs
at most a 503 + Retry-After, never a 200 for data that was not committed."""

from __future__ import annotations

import gzip
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from strata.agent.config import Settings
from strata.agent.runner import Agent

from tests.conftest import LiveAgent, launch_agent
from tests.otlp_factory import gauge_request, genai_attributes, make_span, trace_request
from tests.waiting import wait_until

PB = {"Content-Type": "application/x-protobuf"}


@pytest.fixture(name="agent")
def agent_fixture(tmp_path: Path) -> Iterator[LiveAgent]:
    live = launch_agent(tmp_path, env={"STRATA_DECODE_WORKERS": "2"})
    yield live
    if live.process.poll() is None:
        live.process.kill()
        live.process.wait(10)


def post(agent: LiveAgent, path: str, body: bytes, headers: dict[str, str] | None = None
         ) -> httpx.Response:
    return httpx.post(agent.otlp_endpoint + path, content=body, headers=headers or PB,
                      timeout=60)


def decode_workers(agent: LiveAgent) -> list[int]:
    """The agent's child processes that run multiprocessing's spawn entry point."""
    found = []
    for task in Path(f"/proc/{agent.process.pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                found.append(int(child))
    return found


def test_worker_decoding_stores_prices_and_rejects_like_the_agent(agent: LiveAgent) -> None:
    spans = [make_span(attributes=genai_attributes()) for _ in range(99)]
    spans.append(make_span(start_ns=(1 << 63) - 5, duration_ns=10))
    body = trace_request(spans, {"service.name": "rag-api", "service.version": "2.0"})
    reply = post(agent, "/v1/traces", gzip.compress(body.SerializeToString()),
                 {**PB, "Content-Encoding": "gzip"})
    assert reply.status_code == 200
    assert ExportTraceServiceResponse.FromString(reply.content).partial_success.rejected_spans == 1
    assert decode_workers(agent)  # started on first use
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
        "name": "chat", "startTimeUnixNano": "1", "endTimeUnixNano": "2"}]}]}]}
    reply = post(agent, "/v1/traces", json.dumps(doc).encode(),
                 {"Content-Type": "application/json"})
    assert reply.status_code == 200
    assert post(agent, "/v1/traces", b"\xff garbage").status_code == 400
    bomb = gzip.compress(bytes(64 * 1024 * 1024))
    assert post(agent, "/v1/traces", bomb, {**PB, "Content-Encoding": "gzip"}).status_code == 413
    gauge = gauge_request("queue_depth", 3.0, 1_700_000_000_000_000_000)
    assert post(agent, "/v1/metrics", gauge.SerializeToString()).status_code == 200

    assert agent.get("/api/v1/health").json()["counts"] == {
        "spans": 100, "samples": 1, "incidents": 0, "deployments": 1}
    traces = agent.get("/api/v1/traces", service="rag-api", limit=1000).json()["traces"]
    assert len(traces) == 99
    assert all(t["cost_usd"] and t["cost_usd"] > 0 for t in traces)  # priced in the worker
    (deployment,) = agent.get("/api/v1/deployments").json()["deployments"]
    assert (deployment["service"], deployment["version"]) == ("rag-api", "2.0")


def test_a_killed_worker_costs_a_503_at_most_and_the_pool_comes_back(
        agent: LiveAgent) -> None:
    acked: set[str] = set()
    statuses: list[int] = []

    def send() -> int:
        spans = [make_span(attributes=genai_attributes()) for _ in range(50)]
        reply = post(agent, "/v1/traces", trace_request(spans).SerializeToString())
        statuses.append(reply.status_code)
        if reply.status_code == 200:
            acked.update(s.span_id.hex() for s in spans)
        else:
            assert int(reply.headers["Retry-After"]) > 0
        return reply.status_code

    assert send() == 200
    os.kill(decode_workers(agent)[0], signal.SIGKILL)
    wait_until(lambda: send() == 200, 60, "a 200 from a new pool")
    assert send() == 200
    assert set(statuses) <= {200, 503}, statuses
    assert agent.get("/api/v1/health").json()["counts"]["spans"] == len(acked)


def test_forwarding_keeps_decoding_in_the_agent(tmp_path: Path) -> None:
    """The forwarder exports SpanRecords, which workers do not hand back: with a forward
    endpoint configured, decode_workers is overridden to 0 (no processes are started)."""
    settings = Settings(db=str(tmp_path / "a.duckdb"), gpu_enabled=False, host_enabled=False,
                        decode_workers=2, forward_endpoint="http://127.0.0.1:9/v1/traces")
    agent = Agent(settings)
    try:
        assert agent.exporters.records
        assert agent.decoder.workers == 0
    finally:
        agent.close()
    plain = Agent(Settings(db=str(tmp_path / "b.duckdb"), gpu_enabled=False,
                           host_enabled=False, decode_workers=2))
    try:
        assert plain.decoder.workers == 2
    finally:
        plain.close()


def test_workers_exit_when_the_agent_is_killed(agent: LiveAgent) -> None:
    """SIGKILL leaves the agent no chance to stop its pool: the workers notice alone."""
    body = trace_request([make_span(attributes=genai_attributes())]).SerializeToString()
    assert post(agent, "/v1/traces", body).status_code == 200
    workers = decode_workers(agent)  # started on demand: one for one request
    assert workers
    agent.process.kill()
    agent.process.wait(10)
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), 30,
               "the decode workers to exit")
