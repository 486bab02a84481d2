"""Decode OTLP logs (ExportLogsServiceRequest) into LogRecords. Pure functions.

GenAI events (``gen_ai.user.message``, ``gen_ai.choice``,
``gen_ai.client.inference.operation.details``, ...) arrive as log records whose body and
attributes carry prompt and completion text: they go through the span attributes' rules
(``normalize.clean_attributes``), the body as a content attribute when the record is a
GenAI event and under the same heuristics as any long value otherwise. An exception log
(``exception.type`` set, or the ``exception`` event) keeps its type as ``error_type``.
One bad record is rejected and counted; its batch-mates are kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as LogRecordPb
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from strata.agent.errors import DecodeError
from strata.agent.ingest.normalize import INT64_MAX, IngestPolicy, clean_attributes
from strata.agent.ingest.otlp_codec import (
    DecodeResult,
    _hex_to_b64,
    _parse_json,
    _parse_proto,
    any_value,
    attributes_of,
    json_groups,
)
from strata.agent.ingest.span_columns import ResourceContext, resource_context
from strata.agent.model import AttributeValue, LogRecord

_BODY = "body"
_EVENT_BODY = "gen_ai.content.body"  # a content key: a GenAI event's body is always content
_EVENT_NAME_KEY = "event.name"  # the attribute older SDKs put the event name in


def decode_logs_request(body: bytes, *, is_json: bool, policy: IngestPolicy) -> DecodeResult:
    """Decode an ExportLogsServiceRequest body into ``result.logs``.

    Raises:
        DecodeError: the body is not a decodable request at all.
    """
    result = DecodeResult()
    groups = _json_log_groups(body, result) if is_json else _proto_log_groups(body)
    for resource_pb, records in groups:
        resource = resource_context(attributes_of(resource_pb.attributes))
        for record in records:
            try:
                result.logs.append(_log_record(record, resource, policy, result))
            except (DecodeError, ValueError, UnicodeError) as exc:
                result.reject(str(exc))
    return result


def _proto_log_groups(body: bytes) -> Iterator[tuple[Resource, Any]]:
    request = _parse_proto(body, ExportLogsServiceRequest)
    for rl in request.resource_logs:
        for sl in rl.scope_logs:
            yield rl.resource, sl.log_records


def _json_log_groups(body: bytes, result: DecodeResult) -> Iterator[tuple[Resource, list[Any]]]:
    return json_groups(body, result, ("resourceLogs", "scopeLogs", "logRecords"),
                       lambda item: _parse_json(_hex_ids(item), LogRecordPb))


def _hex_ids(record: Any) -> Any:
    """OTLP/JSON carries ids as hex; the protobuf JSON mapping expects base64."""
    if not isinstance(record, dict):
        msg = "logRecords items must be objects"
        raise DecodeError(msg)
    return {**record, **{k: _hex_to_b64(record[k], k) for k in ("traceId", "spanId")
                         if record.get(k)}}


def _log_record(
    record: LogRecordPb, resource: ResourceContext, policy: IngestPolicy, result: DecodeResult
) -> LogRecord:
    time_ns = record.time_unix_nano or record.observed_time_unix_nano
    if time_ns == 0:
        msg = "invalid log record: neither time_unix_nano nor observed_time_unix_nano set"
        raise DecodeError(msg)
    if time_ns > INT64_MAX:  # past 2262: the store's BIGINT cannot hold it
        msg = f"invalid log record: time {time_ns} is past the year 2262"
        raise DecodeError(msg)
    trace_id = _id(record.trace_id, 16, "trace_id")
    span_id = _id(record.span_id, 8, "span_id")
    cleaned = clean_attributes(attributes_of(record.attributes), policy)
    attributes = cleaned.attributes
    event_name = record.event_name or _text(attributes.get(_EVENT_NAME_KEY)) or ""
    body: AttributeValue = None
    if record.HasField("body"):
        # The body is cleaned as one attribute: under a content key for a GenAI event.
        key = _EVENT_BODY if event_name.startswith("gen_ai.") else _BODY
        cleaned_body = clean_attributes({key: any_value(record.body)}, policy)
        result.redaction_failures += cleaned_body.redaction_failures
        body = cleaned_body.attributes.get(key)
    result.redaction_failures += cleaned.redaction_failures
    error_type = _text(attributes.get("exception.type"))
    if error_type is None and event_name == "exception":
        error_type = "exception"
    return LogRecord(
        time_unix_nano=time_ns,
        service=resource.service,
        severity_number=int(record.severity_number),
        severity_text=record.severity_text[:64] or None,
        event_name=event_name[:256] or None,
        trace_id=trace_id,
        span_id=span_id,
        body=body,
        error_type=error_type[:256] if error_type else None,
        attributes=attributes,
        resource=resource.attributes,
    )


def _id(value: bytes, size: int, name: str) -> str | None:
    """A hex id, None when absent (all zero or empty); wrong lengths are refused."""
    if not value or not any(value):
        return None
    if len(value) != size:
        msg = f"invalid {name} (must be {size} bytes)"
        raise DecodeError(msg)
    return value.hex()


def _text(value: AttributeValue) -> str | None:
    return value if isinstance(value, str) and value else None


def encode_logs_partial_success(rejected: int, message: str, *, as_json: bool) -> bytes:
    """The ExportLogsServiceResponse body for a success reply."""
    response = ExportLogsServiceResponse()
    if rejected:
        response.partial_success.rejected_log_records = rejected
        response.partial_success.error_message = message
    if as_json:
        return str(json_format.MessageToJson(response, indent=None)).encode()
    return bytes(response.SerializeToString())


__all__ = ["decode_logs_request", "encode_logs_partial_success"]
