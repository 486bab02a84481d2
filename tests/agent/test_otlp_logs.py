"""agent/ingest/otlp_logs.py: OTLP logs decode, pure functions on real protobuf and JSON."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from strata.agent.errors import DecodeError
from strata.agent.ingest.normalize import IngestPolicy
from strata.agent.ingest.otlp_logs import decode_logs_request

from tests.otlp_factory import key_values

OFF = IngestPolicy(salt="s")
ON = IngestPolicy(salt="s", capture_content=True)
T = 1_700_000_000_000_000_000


def body(records: list[LogRecord]) -> bytes:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.extend(key_values({"service.name": "svc"}))
    rl.scope_logs.add().log_records.extend(records)
    return request.SerializeToString()


def message(text: str) -> AnyValue:
    return AnyValue(kvlist_value=KeyValueList(values=[
        KeyValue(key="content", value=AnyValue(string_value=text))]))


def test_genai_event_body_redacted_unless_capture_is_on() -> None:
    record = LogRecord(time_unix_nano=T, event_name="gen_ai.choice", body=message("secret"))
    (off,) = decode_logs_request(body([record]), is_json=False, policy=OFF).logs
    assert isinstance(off.body, str)
    assert off.body.startswith("[redacted len=")
    assert "secret" not in off.body
    (on,) = decode_logs_request(body([record]), is_json=False, policy=ON).logs
    assert on.body == {"content": "secret"}


def test_event_name_from_the_attribute_of_older_sdks_and_content_attributes() -> None:
    record = LogRecord(observed_time_unix_nano=T, body=message("secret"),
                       attributes=key_values({"event.name": "gen_ai.user.message",
                                              "gen_ai.prompt": "secret too"}))
    (log,) = decode_logs_request(body([record]), is_json=False, policy=OFF).logs
    assert (log.event_name, log.time_unix_nano, log.service) == ("gen_ai.user.message", T, "svc")
    assert str(log.body).startswith("[redacted len=")
    assert str(log.attributes["gen_ai.prompt"]).startswith("[redacted len=")


def test_a_plain_log_body_is_kept_but_long_role_content_text_is_not() -> None:
    chat = json.dumps([{"role": "user", "content": "x" * 2000}])
    records = [LogRecord(time_unix_nano=T, body=AnyValue(string_value="cache miss")),
               LogRecord(time_unix_nano=T, body=AnyValue(string_value=chat))]
    plain, leaked = decode_logs_request(body(records), is_json=False, policy=OFF).logs
    assert plain.body == "cache miss"
    assert str(leaked.body).startswith("[redacted len=")


def test_bad_records_are_rejected_alone() -> None:
    records = [LogRecord(), LogRecord(time_unix_nano=T, span_id=b"\x01" * 3),
               LogRecord(time_unix_nano=1 << 63),
               LogRecord(time_unix_nano=T, severity_number=17,
                         attributes=key_values({"exception.type": "KeyError"}))]
    result = decode_logs_request(body(records), is_json=False, policy=OFF)
    assert result.rejected == 3
    assert "neither time_unix_nano" in result.error_message
    assert [(r.error_type, r.severity_number) for r in result.logs] == [("KeyError", 17)]


def test_json_ids_are_hex_and_bad_bodies_are_decode_errors() -> None:
    doc = {"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"timeUnixNano": str(T), "traceId": "ab" * 16, "spanId": "cd" * 8},
        {"timeUnixNano": str(T), "traceId": "not hex"}]}]}]}
    result = decode_logs_request(json.dumps(doc).encode(), is_json=True, policy=OFF)
    assert [(r.trace_id, r.span_id) for r in result.logs] == [("ab" * 16, "cd" * 8)]
    assert result.rejected == 1
    with pytest.raises(DecodeError):
        decode_logs_request(b"\xff\x00garbage", is_json=False, policy=OFF)
    with pytest.raises(DecodeError):
        decode_logs_request(b"[]", is_json=True, policy=OFF)
