"""The OTLP/HTTP receiver, end to end against a real agent process."""

from __future__ import annotations

import gzip
import json
import os
import signal
import zlib
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.conftest import LiveAgent
from tests.otlp_factory import gauge_request, genai_attributes, make_span, trace_request

PB = {"Content-Type": "application/x-protobuf"}


def post_traces(agent: LiveAgent, body: bytes, headers: dict[str, str] | None = None):
    return httpx.post(agent.otlp_endpoint + "/v1/traces", content=body,
                      headers=headers or PB, timeout=30)


def span_count(agent: LiveAgent) -> int:
    return agent.get("/api/v1/health").json()["counts"]["spans"]


def test_real_otel_sdk_exporter_spans_are_queryable(live_agent: LiveAgent) -> None:
    """Spans exported by the OpenTelemetry SDK's OTLP/HTTP exporter land with promoted fields."""
    provider = TracerProvider(resource=Resource.create(
        {"service.name": "rag-api", "service.version": "1.4.0", "team": "search"}))
    provider.add_span_processor(SimpleSpanProcessor(
        OTLPSpanExporter(endpoint=live_agent.otlp_endpoint + "/v1/traces")))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("invoke_workflow answer") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_workflow")
        with tracer.start_as_current_span("chat gpt-4o") as child:
            child.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.system": "openai",
                                  "gen_ai.request.model": "gpt-4o",
                                  "gen_ai.usage.prompt_tokens": 321,
                                  "gen_ai.usage.output_tokens": 54})
        trace_id = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()

    detail = live_agent.get(f"/api/v1/traces/{trace_id}").json()
    assert detail["span_count"] == 2
    (root_span,) = detail["spans"]
    assert root_span["layer"] == "orchestration"
    assert root_span["service"] == "rag-api"
    assert root_span["service_version"] == "1.4.0"
    (llm,) = root_span["children"]
    assert (llm["layer"], llm["provider"], llm["request_model"]) == ("model", "openai", "gpt-4o")
    assert (llm["input_tokens"], llm["output_tokens"], llm["team"]) == (321, 54, "search")
    # The deprecated keys were stored under their canonical names only.
    assert "gen_ai.system" not in llm["attributes"]
    assert llm["attributes"]["gen_ai.usage.input_tokens"] == 321


def test_partial_success_counts_rejected_and_keeps_the_rest(live_agent: LiveAgent) -> None:
    """37 invalid spans of 1,000 are rejected; the 963 valid ones are stored (I7)."""
    spans = []
    for i in range(1000):
        if i % 27 == 0 and len([s for s in spans if not any(s.trace_id)]) < 37:
            spans.append(make_span(trace_id=bytes(16)))  # zero trace id: invalid
        else:
            spans.append(make_span(attributes=genai_attributes()))
    bad = sum(1 for s in spans if not any(s.trace_id))
    assert bad == 37
    reply = post_traces(live_agent, trace_request(spans).SerializeToString())
    assert reply.status_code == 200
    response = ExportTraceServiceResponse.FromString(reply.content)
    assert response.partial_success.rejected_spans == 37
    assert "trace_id" in response.partial_success.error_message
    assert span_count(live_agent) == 963


def test_json_and_gzip_bodies(live_agent: LiveAgent) -> None:
    """OTLP/JSON with hex ids and a gzip-compressed protobuf body are both accepted."""
    doc = {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "bot"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "name": "chat claude", "kind": 3, "startTimeUnixNano": "1700000000000000000",
            "endTimeUnixNano": "1700000000500000000",
            "attributes": [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "7"}},
                           {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}]},
            {"traceId": "not-hex", "spanId": "eee19b7ec3c1b175", "name": "bad"}]}]}]}
    reply = post_traces(live_agent, json.dumps(doc).encode(),
                        {"Content-Type": "application/json"})
    assert reply.status_code == 200
    assert reply.json()["partialSuccess"]["rejectedSpans"] == "1"
    body = gzip.compress(trace_request([make_span()]).SerializeToString())
    reply = post_traces(live_agent, body, {**PB, "Content-Encoding": "gzip"})
    assert reply.status_code == 200
    trace = live_agent.get("/api/v1/traces/5b8efff798038103d269b633813fc60c").json()
    assert trace["spans"][0]["input_tokens"] == 7
    assert span_count(live_agent) == 2


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"\xff\xff\xff garbage", PB, 400),
        (b"{not json", {"Content-Type": "application/json"}, 400),
        (b"[1, 2]", {"Content-Type": "application/json"}, 400),
        (b"x", {"Content-Type": "text/plain"}, 415),
        (b"x", {**PB, "Content-Encoding": "zstd"}, 415),
        (b"not gzip at all", {**PB, "Content-Encoding": "gzip"}, 400),
        (b"[" * 100_000 + b"]" * 100_000, {"Content-Type": "application/json"}, 400),
    ],
)
def test_bad_bodies_get_4xx_and_store_nothing(live_agent, body, headers, status) -> None:
    """Undecodable bodies are 400, unsupported types/encodings 415; nothing is stored (I3-I5)."""
    reply = post_traces(live_agent, body, headers)
    assert reply.status_code == status
    assert span_count(live_agent) == 0
    assert live_agent.get("/api/v1/health").status_code == 200


def test_deep_anyvalue_nesting_is_rejected_not_crashing(live_agent: LiveAgent) -> None:
    """A kvlist nested 10,000 deep is a 400, never a crash (CVE-2025-4565 class)."""
    # Build the nested AnyValue bytes by hand: field 6 (kvlist) wrapping field 1 (values).
    inner = b""
    for _ in range(10_000):
        kv = b"\x0a\x01k" + b"\x12" + _varint(len(inner)) + inner  # KeyValue{key, value}
        kvlist = b"\x0a" + _varint(len(kv)) + kv
        inner = b"\x32" + _varint(len(kvlist)) + kvlist  # AnyValue.kvlist_value
    reply = post_traces(live_agent, _span_with_raw_attribute(inner))
    assert reply.status_code in (200, 400)
    if reply.status_code == 200:  # decoded, but the span was rejected for its depth
        response = ExportTraceServiceResponse.FromString(reply.content)
        assert response.partial_success.rejected_spans == 1
    assert live_agent.get("/api/v1/health").status_code == 200


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _span_with_raw_attribute(any_value_bytes: bytes) -> bytes:
    span = make_span().SerializeToString()
    kv = b"\x0a\x01a" + b"\x12" + _varint(len(any_value_bytes)) + any_value_bytes
    span += b"\x4a" + _varint(len(kv)) + kv  # Span.attributes (field 9)
    scope_spans = b"\x12" + _varint(len(span)) + span  # ScopeSpans.spans (field 2)
    resource_spans = b"\x12" + _varint(len(scope_spans)) + scope_spans  # scope_spans (field 2)
    return b"\x0a" + _varint(len(resource_spans)) + resource_spans


def test_oversized_and_gzip_bomb_bodies_get_413(live_agent: LiveAgent) -> None:
    """A declared-too-large body and a 1 GiB gzip bomb are refused with 413 (I1, I2)."""
    reply = httpx.post(live_agent.otlp_endpoint + "/v1/traces", content=b"x" * (21 * 1024**2),
                       headers=PB, timeout=30)
    assert reply.status_code == 413
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1024**2)
    bomb = b"".join(compressor.compress(zeros) for _ in range(1024)) + compressor.flush()
    assert len(bomb) < 2 * 1024**2
    reply = post_traces(live_agent, bomb, {**PB, "Content-Encoding": "gzip"})
    assert reply.status_code == 413
    # Concatenated members: each small, together over the limit.
    member = gzip.compress(bytes(8 * 1024**2))
    reply = post_traces(live_agent, member * 3, {**PB, "Content-Encoding": "gzip"})
    assert reply.status_code == 413
    assert live_agent.get("/api/v1/health").status_code == 200


def test_wrong_method_and_paths(live_agent: LiveAgent) -> None:
    """GET on the receiver is 405, an unknown path 404, the API is not on the OTLP port (I5)."""
    assert httpx.get(live_agent.otlp_endpoint + "/v1/traces").status_code == 405
    assert httpx.post(live_agent.otlp_endpoint + "/v1/profiles", headers=PB).status_code == 404
    assert httpx.get(live_agent.otlp_endpoint + "/api/v1/health").status_code == 404
    assert httpx.post(live_agent.api_url + "/v1/traces", headers=PB).status_code == 404


def test_metrics_keep_event_time_and_layer(live_agent: LiveAgent) -> None:
    """A pushed DCGM gauge is stored in the infrastructure layer with its own timestamp."""
    body = gauge_request("DCGM_FI_DEV_GPU_TEMP", 81.0, 1_700_000_123_000_000_000,
                         {"gpu": "0", "UUID": "GPU-abc", "Hostname": "node-1"})
    reply = httpx.post(live_agent.otlp_endpoint + "/v1/metrics",
                       content=body.SerializeToString(), headers=PB)
    assert reply.status_code == 200
    assert live_agent.get("/api/v1/health").json()["counts"]["samples"] == 1


def test_restart_keeps_data_and_sigterm_exits_zero(live_agent: LiveAgent) -> None:
    """SIGTERM drains and exits 0; a restarted agent still has every acknowledged span (D6)."""
    for _ in range(5):
        spans = [make_span(attributes=genai_attributes()) for _ in range(100)]
        assert post_traces(live_agent, trace_request(spans).SerializeToString()).status_code == 200
    assert live_agent.stop(signal.SIGTERM) == 0
    live_agent.restart()
    assert span_count(live_agent) == 500


def test_kill_9_after_200_loses_nothing(live_agent: LiveAgent) -> None:
    """Every span acknowledged with 200 is there after SIGKILL and restart (D1)."""
    acked = 0
    for i in range(20):
        spans = [make_span(attributes={"run.batch": i}) for _ in range(50)]
        if post_traces(live_agent, trace_request(spans).SerializeToString()).status_code == 200:
            acked += 50
    live_agent.process.send_signal(signal.SIGKILL)
    live_agent.process.wait(10)
    live_agent.restart()
    assert span_count(live_agent) == acked == 1000


@pytest.mark.parametrize("payload", [
    "' OR 1=1--", "x'; DROP TABLE spans; --", "1 UNION SELECT * FROM meta",
    "read_csv('/etc/passwd')", "'; COPY spans TO '/tmp/x.csv'; --",
    "ʼ OR ʼ1ʼ=ʼ1",  # noqa: RUF001 - homoglyph quotes are the attack being tested
    "'; ATTACH '/tmp/evil.db'; --", "'; INSTALL httpfs; --",
])
def test_sql_injection_in_filters_changes_nothing(live_agent: LiveAgent, payload: str) -> None:
    """Injection strings in every filter are plain values: no rows, no 500, no damage (S7)."""
    spans = [make_span(attributes=genai_attributes()) for _ in range(3)]
    post_traces(live_agent, trace_request(spans).SerializeToString())
    for param in ("service", "model", "since", "until", "status", "min_duration_ms", "limit"):
        reply = live_agent.get("/api/v1/traces", **{param: payload})
        assert reply.status_code in (200, 400, 422), (param, reply.status_code)
        if reply.status_code == 200:
            assert reply.json()["traces"] == []
    assert live_agent.get("/api/v1/traces/" + "0" * 31 + "'").status_code == 400
    assert span_count(live_agent) == 3
    assert len(live_agent.get("/api/v1/traces").json()["traces"]) == 3


def test_non_loopback_bind_without_token_refuses_to_start(tmp_path) -> None:
    """Binding 0.0.0.0 with no token exits non-zero and says why (S2)."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "strata.agent.cli", "agent", "--db", str(tmp_path / "x.duckdb"),
         "--host", "0.0.0.0", "--otlp-port", "0", "--api-port", "0"],  # noqa: S104
        capture_output=True, text=True, timeout=30,
        env={k: v for k, v in os.environ.items() if not k.startswith("STRATA_")},
    )
    assert result.returncode != 0
    assert "without an API token" in result.stderr


PAST_2262_NS = 1 << 63  # OTLP times are uint64; the store's columns are BIGINT


def test_a_time_past_2262_is_rejected_alone_and_fails_no_other_request(
        live_agent: LiveAgent) -> None:
    """A span or point at >= 2^63 ns is one rejected item (protobuf and JSON); its
    batch-mates are stored, and two healthy senders sharing the group commits with a poisoning
    one get only 200s."""
    def healthy(n: int) -> list[int]:
        with httpx.Client(timeout=30) as client:
            return [client.post(live_agent.otlp_endpoint + "/v1/traces", headers=PB, content=
                                trace_request([make_span() for _ in range(50)])
                                .SerializeToString()).status_code for _ in range(n)]

    def poisoning(n: int) -> list[tuple[int, int]]:
        out = []
        with httpx.Client(timeout=30) as client:
            for _ in range(n):
                spans = [make_span() for _ in range(199)]
                spans.append(make_span(start_ns=PAST_2262_NS - 10, duration_ns=20))
                reply = client.post(live_agent.otlp_endpoint + "/v1/traces", headers=PB,
                                    content=trace_request(spans).SerializeToString())
                rejected = (ExportTraceServiceResponse.FromString(reply.content)
                            .partial_success.rejected_spans if reply.status_code == 200 else -1)
                out.append((reply.status_code, rejected))
        return out

    with ThreadPoolExecutor(3) as pool:
        senders = [pool.submit(healthy, 20), pool.submit(healthy, 20), pool.submit(poisoning, 20)]
        statuses = [sender.result() for sender in senders]
    assert statuses[0] == statuses[1] == [200] * 20
    assert statuses[2] == [(200, 1)] * 20
    assert span_count(live_agent) == 2 * 20 * 50 + 20 * 199

    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": f"eee19b7ec3c1b17{i}",
         "name": "chat", "startTimeUnixNano": str(start), "endTimeUnixNano": str(end)}
        for i, (start, end) in enumerate([(1, 2), (1, PAST_2262_NS), (1, (1 << 64) - 1)])]}]}]}
    reply = post_traces(live_agent, json.dumps(doc).encode(), {"Content-Type": "application/json"})
    assert reply.status_code == 200
    assert reply.json()["partialSuccess"]["rejectedSpans"] == "2"
    assert "2^63" in reply.json()["partialSuccess"]["errorMessage"]
    assert span_count(live_agent) == 2 * 20 * 50 + 20 * 199 + 1

    request = gauge_request("queue_depth", 1.0, 1_700_000_000_000_000_000)
    points = request.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points
    points.add(time_unix_nano=PAST_2262_NS, as_double=2.0)
    points.add(time_unix_nano=1_700_000_001_000_000_000, as_double=3.0)
    reply = httpx.post(live_agent.otlp_endpoint + "/v1/metrics", headers=PB,
                       content=request.SerializeToString())
    assert reply.status_code == 200
    response = ExportMetricsServiceResponse.FromString(reply.content)
    assert response.partial_success.rejected_data_points == 1
    doc_metrics = json_format.MessageToDict(request)
    reply = httpx.post(live_agent.otlp_endpoint + "/v1/metrics", content=json.dumps(doc_metrics),
                       headers={"Content-Type": "application/json"})
    assert reply.status_code == 200
    assert reply.json()["partialSuccess"]["rejectedDataPoints"] == "1"
    assert live_agent.get("/api/v1/health").json()["counts"]["samples"] == 4
