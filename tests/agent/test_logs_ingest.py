"""OTLP logs over HTTP (protobuf and JSON) and gRPC, against a real agent process: stored
linked to their spans, GenAI content redacted, shown with the span in the trace API."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.conftest import LiveAgent, launch_agent
from tests.otlp_factory import genai_attributes, key_values, make_span, trace_request

LOGS = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
PROMPT = "Summarise the merger memo for the board, confidential"
T0 = 1_700_000_000_000_000_000


def logs_request(records: list[LogRecord], service: str = "chat-api") -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.extend(key_values({"service.name": service}))
    rl.scope_logs.add().log_records.extend(records)
    return request


def user_message(trace_id: bytes, span_id: bytes) -> LogRecord:
    body = AnyValue(kvlist_value=KeyValueList(values=[
        KeyValue(key="content", value=AnyValue(string_value=PROMPT)),
        KeyValue(key="role", value=AnyValue(string_value="user"))]))
    return LogRecord(time_unix_nano=T0 + 1000, event_name="gen_ai.user.message", body=body,
                     trace_id=trace_id, span_id=span_id, severity_number=9,
                     attributes=key_values({"gen_ai.system": "openai"}))


@pytest.fixture(scope="module", name="agent")
def agent_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAgent]:
    live = launch_agent(tmp_path_factory.mktemp("logs"))
    yield live
    live.stop()


def test_http_protobuf_logs_join_their_span_redacted(agent: LiveAgent) -> None:
    trace_id, span_id = os.urandom(16), os.urandom(8)
    span = make_span(trace_id=trace_id, span_id=span_id, start_ns=T0,
                     attributes=genai_attributes())
    span.events.append(Span.Event(time_unix_nano=T0 + 5, name="gen_ai.content.prompt",
                                  attributes=key_values({"gen_ai.prompt": PROMPT})))
    assert httpx.post(agent.otlp_endpoint + "/v1/traces",
                      content=trace_request([span]).SerializeToString(),
                      headers={"Content-Type": "application/x-protobuf"}).status_code == 200
    exception = LogRecord(time_unix_nano=T0 + 2000, trace_id=trace_id, span_id=span_id,
                          severity_number=17, body=AnyValue(string_value="upstream failed"),
                          attributes=key_values({"exception.type": "TimeoutError"}))
    bad = LogRecord(time_unix_nano=T0, trace_id=b"\x01" * 5)  # wrong id length
    reply = httpx.post(agent.otlp_endpoint + "/v1/logs",
                       content=logs_request([user_message(trace_id, span_id), exception, bad])
                       .SerializeToString(),
                       headers={"Content-Type": "application/x-protobuf"})
    assert reply.status_code == 200
    partial = ExportLogsServiceResponse.FromString(reply.content).partial_success
    assert (partial.rejected_log_records, "trace_id" in partial.error_message) == (1, True)

    detail = agent.get(f"/api/v1/traces/{trace_id.hex()}").json()
    (stored,) = detail["spans"]
    assert [(r["event_name"], r["span_event"]) for r in stored["logs"]] == [
        ("gen_ai.content.prompt", True), ("gen_ai.user.message", False), (None, False)]
    prompt_event, message, failure = stored["logs"]
    assert prompt_event["attributes"]["gen_ai.prompt"].startswith("[redacted len=")
    assert message["body"].startswith("[redacted len=")
    assert failure["body"] == "upstream failed"  # an ordinary log message is kept
    assert failure["error_type"] == "TimeoutError"
    assert PROMPT.encode() not in agent.db.read_bytes() + wal_bytes(agent)
    metrics = httpx.get(agent.api_url + "/metrics", timeout=30).text
    assert "strata_receiver_accepted_log_records_total 2.0" in metrics
    assert "strata_receiver_rejected_log_records_total 1.0" in metrics


def wal_bytes(agent: LiveAgent) -> bytes:
    wal = agent.db.with_name(agent.db.name + ".wal")
    return wal.read_bytes() if wal.exists() else b""


def test_json_and_grpc_logs(agent: LiveAgent) -> None:
    trace_hex, span_hex = os.urandom(16).hex(), os.urandom(8).hex()
    span = make_span(trace_id=bytes.fromhex(trace_hex), span_id=bytes.fromhex(span_hex),
                     start_ns=T0)
    httpx.post(agent.otlp_endpoint + "/v1/traces", content=trace_request([span])
               .SerializeToString(), headers={"Content-Type": "application/x-protobuf"})
    doc = {"resourceLogs": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "chat-api"}}]},
        "scopeLogs": [{"logRecords": [{
            "timeUnixNano": str(T0 + 10), "traceId": trace_hex, "spanId": span_hex,
            "severityText": "WARN", "body": {"stringValue": "slow retrieval"}}]}]}]}
    reply = httpx.post(agent.otlp_endpoint + "/v1/logs", content=json.dumps(doc),
                       headers={"Content-Type": "application/json"})
    assert reply.status_code == 200, reply.text
    orphan = LogRecord(observed_time_unix_nano=T0 + 20, trace_id=bytes.fromhex(trace_hex),
                       body=AnyValue(string_value="no span id"))
    with grpc.insecure_channel(agent.grpc_target) as channel:
        answer = channel.unary_unary(LOGS)(logs_request([orphan]).SerializeToString(),
                                           timeout=30)
    assert ExportLogsServiceResponse.FromString(answer).partial_success.rejected_log_records == 0
    detail = agent.get(f"/api/v1/traces/{trace_hex}").json()
    assert [r["body"] for r in detail["spans"][0]["logs"]] == ["slow retrieval"]
    assert detail["spans"][0]["logs"][0]["severity_text"] == "WARN"
    assert [r["body"] for r in detail["logs"]] == ["no span id"]
