"""A sidecar forwards each span once, with its final cost (``finops.held_spans``): spans only
the GPU pass can price wait for it, then reach the upstream with the measured energy and
GPU-time cost; a restart forwards what was held. Real agent, real OTLP forwarder posting
to a real HTTP endpoint on 127.0.0.1, and the forwarded bodies replayed into a hub on chdb.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from strata.agent.api.app import create_app, create_hub_app
from strata.agent.config import Settings
from strata.agent.hub import Hub
from strata.agent.runner import Agent

from tests.agent.test_energy_topology import H100_USD_PER_HOUR, HOST, LLAMA, TRACES, UUID
from tests.agent.test_energy_topology import _openllmetry as openllmetry
from tests.exporters.upstream import RecordingUpstream
from tests.otlp_factory import counter_request, make_span, trace_request
from tests.waiting import wait_until

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z: event time and, at first, the agent's clock
PB = {"Content-Type": "application/x-protobuf"}
HOLD_NS = (60 + 60) * S  # the default analysis interval plus a minute


class Clock:
    def __init__(self) -> None:
        self.now = T0 + 30 * S

    def __call__(self) -> int:
        return self.now


@pytest.fixture(name="upstream")
def upstream_fixture() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream()
    yield server
    server.stop()


def edge_agent(tmp_path: Path, upstream: RecordingUpstream, clock: Clock) -> Agent:
    settings = Settings(db=str(tmp_path / "edge.duckdb"), forward_endpoint=upstream.url,
                        forward_initial_backoff_s=0.05, gpu_enabled=False, host_enabled=False)
    return Agent(settings, clock=clock)


def post(client: TestClient, path: str, body: bytes) -> None:
    reply = client.post(path, content=body, headers=PB)
    assert reply.status_code == 200, reply.text


def metric_body() -> bytes:
    """The GPU's energy counter (mJ): +1 Wh by T0+10 s, +2 Wh more by T0+20 s."""
    labels = {"gpu": "0", "UUID": UUID, "modelName": "NVIDIA H100 80GB HBM3", "Hostname": HOST}
    points = [(T0, 50_000.0), (T0 + 10 * S, 3_650_000.0), (T0 + 20 * S, 10_850_000.0)]
    return counter_request("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", points,
                           start_ns=T0 - 3600 * S, labels=labels).SerializeToString()


def trace_body() -> bytes:
    """Two llama calls to the GPU host (by server.address), a hosted haiku call, a model in
    no price table served nowhere Strata knows."""
    spans = [
        make_span(trace_id=bytes.fromhex(TRACES["a"]), start_ns=T0 + 2 * S, duration_ns=10 * S,
                  attributes=openllmetry(LLAMA, "openai", HOST, 300)),
        make_span(trace_id=bytes.fromhex(TRACES["b"]), start_ns=T0 + 6 * S, duration_ns=10 * S,
                  attributes=openllmetry(LLAMA, "openai", HOST, 300)),
        make_span(trace_id=bytes.fromhex(TRACES["haiku"]), start_ns=T0 + 3 * S,
                  duration_ns=2 * S, attributes=openllmetry(
                      "claude-3-5-haiku-20241022", "anthropic", "api.anthropic.com", 500)),
        make_span(trace_id=bytes.fromhex(TRACES["unknown"]), start_ns=T0 + 4 * S,
                  duration_ns=S, attributes=openllmetry("acme-llm-7", "acme", None, 100)),
    ]
    return trace_request(spans, {"service.name": "summarizer"}).SerializeToString()


def forwarded(upstream: RecordingUpstream) -> dict[str, list[dict[str, Any]]]:
    """The spans the upstream received, by trace id: their attributes as a dict."""
    out: dict[str, list[dict[str, Any]]] = {}
    for request in upstream.requests:
        if not request.path.endswith("/v1/traces"):
            continue
        message = ExportTraceServiceRequest.FromString(request.body)
        for resource_spans in message.resource_spans:
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: _value(a.value) for a in span.attributes}
                    out.setdefault(span.trace_id.hex(), []).append(attributes)
    return out


def _value(value: Any) -> Any:
    return getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None


def wait_for(upstream: RecordingUpstream, predicate: Callable[[dict[str, Any]], bool],
             what: str) -> dict[str, list[dict[str, Any]]]:
    return wait_until(lambda: (found := forwarded(upstream)) and predicate(found) and found,
                      20, what)


def test_gpu_served_spans_are_forwarded_after_the_gpu_pass_with_its_figures(
    tmp_path: Path, upstream: RecordingUpstream,
) -> None:
    clock = Clock()
    agent = edge_agent(tmp_path, upstream, clock)
    with TestClient(create_app(agent), base_url="http://127.0.0.1") as client:
        post(client, "/v1/metrics", metric_body())
        post(client, "/v1/traces", trace_body())
        # at commit only the hosted call went: ingest priced it
        at_commit = wait_for(upstream, lambda f: TRACES["haiku"] in f, "the hosted span")
        assert set(at_commit) == {TRACES["haiku"]}
        assert client.post("/api/v1/analyze").status_code == 200  # the GPU pass runs
        assert agent.forward_held_spans() == 0  # not held long enough yet
        clock.now += HOLD_NS
        assert agent.forward_held_spans() == 3
        assert agent.forward_held_spans() == 0  # each once
        spans = wait_for(upstream, lambda f: len(f) == 4, "the held spans")
        upstream_bodies = [r.body for r in upstream.requests]
    assert Counter({k: len(v) for k, v in spans.items()}) == Counter(
        dict.fromkeys(TRACES.values(), 1))
    # the GPU pass's figures (hand-computed in test_energy_topology): 0.8 and 1.2 Wh measured,
    # 7 GPU-seconds each at the H100 list price
    for trace, wh in ((TRACES["a"], 0.8), (TRACES["b"], 1.2)):
        [attributes] = spans[trace]
        assert attributes["strata.energy.wh"] == pytest.approx(wh, rel=1e-9)
        assert attributes["strata.energy.source"] == "measured"
        assert attributes["gen_ai.usage.cost.usd"] == pytest.approx(
            H100_USD_PER_HOUR * 7 / 3600, rel=1e-9)
    [unknown] = spans[TRACES["unknown"]]
    assert "gen_ai.usage.cost.usd" not in unknown
    assert "strata.energy.wh" not in unknown

    # the hub that receives these bodies reports the measured energy and GPU-time cost
    hub = Hub(Settings(), f"chdb:{tmp_path / 'ch'}")
    with TestClient(create_hub_app(hub), base_url="http://127.0.0.1") as client:
        for request, body in zip(upstream.requests, upstream_bodies, strict=True):
            post(client, request.path, body)
        window = {"since": "2026-01-01T00:00:00Z", "until": "2026-01-01T01:00:00Z"}
        energy = client.get("/api/v1/energy", params=window).json()
        cost = client.get("/api/v1/cost", params={**window, "group_by": "model"}).json()
    assert energy["totals"]["energy_wh_measured"] == pytest.approx(2.0, rel=1e-9)
    llama = next(g for g in cost["groups"] if g["group"] == LLAMA)
    assert llama["usd"] == pytest.approx(2 * H100_USD_PER_HOUR * 7 / 3600, rel=1e-9)


def test_held_spans_survive_a_restart(tmp_path: Path, upstream: RecordingUpstream) -> None:
    clock = Clock()
    agent = edge_agent(tmp_path, upstream, clock)
    with TestClient(create_app(agent), base_url="http://127.0.0.1") as client:
        post(client, "/v1/traces", trace_body())
        wait_for(upstream, lambda f: TRACES["haiku"] in f, "the hosted span")
    # stopped before the held spans were due; the next process forwards them, once
    clock.now += 10 * HOLD_NS
    again = edge_agent(tmp_path, upstream, clock)
    with TestClient(create_app(again), base_url="http://127.0.0.1"):
        assert again.forward_held_spans() == 3
        assert again.forward_held_spans() == 0
        spans = wait_for(upstream, lambda f: len(f) == 4, "the held spans")
    assert sorted(len(v) for v in spans.values()) == [1, 1, 1, 1]
