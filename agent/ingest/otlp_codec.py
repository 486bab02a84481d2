"""Decode OTLP/HTTP request bodies into Strata records. Pure functions.

One bad span or data point is counted as rejected and never drops its batch-mates; a body
that cannot be decoded at all raises ``DecodeError`` (the receiver answers 400). Protobuf is
read field by field from the generated classes, never through ``MessageToDict`` (4x slower).
JSON is the OTLP/JSON mapping: ids are hex, 64-bit integers may be strings.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from strata.agent.errors import DecodeError
from strata.agent.ingest.normalize import (
    INT64_MAX,
    PLAIN_KEYS,
    CleanedAttributes,
    IngestPolicy,
    clean_attributes,
    metric_sample,
)
from strata.agent.ingest.span_columns import (
    ResourceContext,
    SpanColumns,
    checked_ids_and_times,
    resource_context,
    span_kind,
    status_name,
)
from strata.agent.model import AttributeValue, LogRecord, Sample, SpanRecord
from strata.agent.semconv import CONTENT_HEURISTIC_MIN_BYTES
from zlib_ng import zlib_ng

MAX_ANY_VALUE_DEPTH = 32
# zlib-ng's stub declares ``error`` as an instance; it is the exception class (as zlib's)
_INFLATE_ERROR = cast("type[Exception]", zlib_ng.error)
_INFLATE_STEP = 1024 * 1024


class BodyTooLarge(Exception):
    """The body, after decompression, is over the limit."""


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo ``Content-Encoding``, stopping at *limit* output bytes (gzip bombs stop there).

    Raises:
        BodyTooLarge: the decompressed body exceeds *limit*.
        DecodeError: the gzip stream is corrupt.
    """
    if encoding in ("", "identity"):
        if len(body) > limit:
            raise BodyTooLarge
        return body
    out = bytearray()
    view = memoryview(body)
    position = 0
    # Input goes in and output comes out in steps of at most _INFLATE_STEP, so a bomb never
    # holds more than limit + one step (zlib's unconsumed_tail and unused_data are copies:
    # fed the whole body they would each duplicate it). Concatenated gzip members are valid
    # gzip; each gets a fresh inflater. zlib-ng (the stdlib zlib's interface) inflates
    # faster: 1.4x on prose-like bodies, 9x on the ingest benchmark's (docs/benchmarks.md).
    inflater = zlib_ng.decompressobj(wbits=31)
    pending: bytes | memoryview = b""
    member_open = False
    try:
        while True:
            if not pending:
                if position >= len(view):
                    break
                pending = view[position:position + _INFLATE_STEP]
                position += len(pending)
            member_open = True
            out += inflater.decompress(pending, min(_INFLATE_STEP, limit + 1 - len(out)))
            if len(out) > limit:
                raise BodyTooLarge
            if inflater.eof:
                pending = inflater.unused_data
                inflater = zlib_ng.decompressobj(wbits=31)
                member_open = False
            else:
                pending = inflater.unconsumed_tail
    except _INFLATE_ERROR as exc:
        msg = f"invalid gzip body: {exc}"
        raise DecodeError(msg) from None
    if member_open:
        msg = "truncated gzip body"
        raise DecodeError(msg)
    return bytes(out)


def any_value(value: AnyValue, depth: int = 0) -> AttributeValue:
    """An OTLP AnyValue as a plain Python value (bytes as hex)."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which in _SCALAR_FIELDS:
        return getattr(value, which)  # type: ignore[no-any-return]
    if depth >= MAX_ANY_VALUE_DEPTH:
        msg = f"attribute nesting deeper than {MAX_ANY_VALUE_DEPTH}"
        raise DecodeError(msg)
    if which == "array_value":
        return [any_value(v, depth + 1) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value, depth + 1) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return value.bytes_value.hex()
    return None


_SCALAR_FIELDS = frozenset({"int_value", "double_value", "bool_value"})


def attributes_of(kvs: Any) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    for kv in kvs:
        value = kv.value
        # Most values are non-empty strings: one accessor instead of WhichOneof + getattr.
        text = value.string_value
        out[kv.key] = text if text else any_value(value)
    return out


def cleaned_attributes_of(kvs: Any, policy: IngestPolicy) -> CleanedAttributes:
    """``clean_attributes(attributes_of(kvs))`` in one pass when nothing needs cleaning (the
    common case: known plain keys, short strings and numbers), else exactly that."""
    out: dict[str, AttributeValue] = {}
    plain = PLAIN_KEYS
    needs_cleaning = len(kvs) > policy.max_attributes
    for kv in kvs:
        key = kv.key
        value = kv.value
        text = value.string_value
        if text:
            out[key] = text
            if len(text) > CONTENT_HEURISTIC_MIN_BYTES or key not in plain:
                needs_cleaning = True
        else:
            scalar = out[key] = any_value(value)  # bytes come back as (hex) text
            if key not in plain or not (type(scalar) is not str or
                                        len(scalar) <= CONTENT_HEURISTIC_MIN_BYTES) or (
                    type(scalar) is list or type(scalar) is dict):
                needs_cleaning = True
    return clean_attributes(out, policy) if needs_cleaning else CleanedAttributes(out, 0, 0)


@dataclass(slots=True)
class DecodeResult:
    """Records decoded from one request, and the items rejected with the first reasons."""

    span_columns: SpanColumns | None = None  # traces: the spans, as the store's columns
    samples: list[Sample] = field(default_factory=list)
    logs: list[LogRecord] = field(default_factory=list)
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    redaction_failures: int = 0

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if len(self.errors) < 5:
            self.errors.append(reason)

    @property
    def error_message(self) -> str:
        return "; ".join(self.errors)

    @property
    def spans(self) -> list[SpanRecord]:
        """The decoded spans as SpanRecords (built on each call: the ingest path uses
        ``span_columns``)."""
        return self.span_columns.records() if self.span_columns is not None else []

    @property
    def span_count(self) -> int:
        return len(self.span_columns) if self.span_columns is not None else 0


# -- traces -----------------------------------------------------------------------------------


def decode_trace_request(body: bytes, *, is_json: bool, policy: IngestPolicy) -> DecodeResult:
    """Decode an ExportTraceServiceRequest body into the store's span columns
    (``result.span_columns``) and its span events into ``result.logs``.

    Raises:
        DecodeError: the body is not a decodable request at all.
    """
    result = DecodeResult()
    columns = result.span_columns = SpanColumns()
    groups = _json_span_groups(body, result) if is_json else _proto_span_groups(body)
    for resource_pb, spans in groups:
        resource = resource_context(attributes_of(resource_pb.attributes))
        for span in spans:
            try:
                trace_id, span_id, start, end = checked_ids_and_times(span)
                cleaned = cleaned_attributes_of(span.attributes, policy)
            except (DecodeError, ValueError, UnicodeError) as exc:
                result.reject(str(exc))
                continue
            result.redaction_failures += cleaned.redaction_failures
            status = status_name(span.status.code)
            columns.add(trace_id, span_id, span.parent_span_id, span.name, span_kind(span.kind),
                        start, end, status, cleaned.attributes, resource,
                        _exception_type(span) if status == "error" else None)
            if span.events:
                result.logs.extend(_event_logs(span, columns.rows[-1], start, resource,
                                               policy, result))
    return result


def _parse_proto(body: bytes, message_type: Any) -> Any:
    """Parse a whole request; upb's recursion limit turns deep nesting into an error here."""
    request = message_type()
    try:
        request.ParseFromString(body)
    except (ProtobufDecodeError, RecursionError) as exc:
        msg = f"invalid protobuf {message_type.__name__}: {exc}"
        raise DecodeError(msg) from None
    return request


def _proto_span_groups(body: bytes) -> Iterator[tuple[Resource, Any]]:
    request = _parse_proto(body, ExportTraceServiceRequest)
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            yield rs.resource, ss.spans


def _load_json(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        msg = f"invalid JSON body: {exc}"
        raise DecodeError(msg) from None
    if not isinstance(doc, dict):
        msg = "JSON body must be an object"
        raise DecodeError(msg)
    return doc


def _json_list(parent: Mapping[str, Any], key: str) -> list[Any]:
    value = parent.get(key, [])
    if not isinstance(value, list):
        msg = f"{key} must be an array"
        raise DecodeError(msg)
    return value


def json_groups(
    body: bytes, result: DecodeResult, keys: tuple[str, str, str],
    parse_item: Callable[[Any], Any],
) -> Iterator[tuple[Resource, list[Any]]]:
    """(resource, items) per scope of an OTLP/JSON request whose levels are named *keys*
    (e.g. resourceSpans, scopeSpans, spans); an item *parse_item* refuses is rejected alone."""
    resource_key, scope_key, items_key = keys
    doc = _load_json(body)
    for rs in _json_list(doc, resource_key):
        if not isinstance(rs, dict):
            msg = f"{resource_key} items must be objects"
            raise DecodeError(msg)
        resource = _parse_json(rs.get("resource", {}), Resource)
        for ss in _json_list(rs, scope_key):
            items = []
            for item in _json_list(ss, items_key) if isinstance(ss, dict) else []:
                try:
                    items.append(parse_item(item))
                except DecodeError as exc:
                    result.reject(str(exc))
            yield resource, items


def _json_span_groups(body: bytes, result: DecodeResult) -> Iterator[tuple[Resource, list[Span]]]:
    return json_groups(body, result, ("resourceSpans", "scopeSpans", "spans"),
                       lambda item: _parse_json(_hex_ids_to_base64(item), Span))


def _parse_json(doc: Any, message_type: Any) -> Any:
    try:
        return json_format.ParseDict(doc, message_type(), ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError, AttributeError, RecursionError,
            SystemError) as exc:  # upb raises SystemError for a lone surrogate in a key
        msg = f"invalid {message_type.__name__}: {exc}"
        raise DecodeError(msg) from None


def _hex_ids_to_base64(span: Any) -> Any:
    """OTLP/JSON carries ids as hex; the protobuf JSON mapping expects base64."""
    if not isinstance(span, dict):
        msg = "span must be an object"
        raise DecodeError(msg)
    span = dict(span)
    for key in ("traceId", "spanId", "parentSpanId"):
        if span.get(key):
            span[key] = _hex_to_b64(span[key], key)
    if isinstance(span.get("links"), list):
        span["links"] = [
            {**link, **{k: _hex_to_b64(link[k], k) for k in ("traceId", "spanId") if link.get(k)}}
            for link in span["links"] if isinstance(link, dict)
        ]
    return span


def _hex_to_b64(value: Any, key: str) -> str:
    try:
        return base64.b64encode(bytes.fromhex(str(value))).decode()
    except ValueError:
        msg = f"{key} must be hex, got {str(value)[:40]!r}"
        raise DecodeError(msg) from None


MAX_EVENTS_PER_SPAN = 128


def _event_logs(
    span: Span, row: tuple[Any, ...], start: int, resource: ResourceContext,
    policy: IngestPolicy, result: DecodeResult,
) -> Iterator[LogRecord]:
    """A span's events, stored with its logs (the ``logs`` table) so the trace shows both
    together; attributes cleaned (content redacted) as the span's are. *row*: the span's
    row in ``SpanColumns`` (its ids, hex)."""
    trace_id, span_id = row[0], row[1]
    for event in span.events[:MAX_EVENTS_PER_SPAN]:
        cleaned = cleaned_attributes_of(event.attributes, policy)
        result.redaction_failures += cleaned.redaction_failures
        error_type = cleaned.attributes.get("exception.type")
        yield LogRecord(
            # an unset time, or one past 2262 (the store's BIGINT), is dated by its span
            time_unix_nano=(event.time_unix_nano if 0 < event.time_unix_nano <= INT64_MAX
                            else start),
            service=resource.service, event_name=event.name[:256] or None,
            trace_id=trace_id, span_id=span_id,
            error_type=str(error_type)[:256] if error_type is not None else None,
            attributes=cleaned.attributes, resource=resource.attributes, span_event=True,
        )


def _exception_type(span: Span) -> str | None:
    for event in span.events:
        if event.name == "exception":
            for kv in event.attributes:
                if kv.key == "exception.type":
                    return str(any_value(kv.value))[:256]
    return None


# -- metrics ----------------------------------------------------------------------------------


def decode_metrics_request(body: bytes, *, is_json: bool) -> DecodeResult:
    """Decode an ExportMetricsServiceRequest body into Samples, keeping event timestamps.

    Gauges and sums give one sample per point; histograms give ``<name>.count``,
    ``<name>.sum`` and p50/p95 estimated from the buckets; summaries one sample per quantile.

    Raises:
        DecodeError: the body is not a decodable request at all.
    """
    result = DecodeResult()
    if is_json:
        request = _parse_json(_load_json(body), ExportMetricsServiceRequest)
    else:
        request = _parse_proto(body, ExportMetricsServiceRequest)
    for rm in request.resource_metrics:
        resource = attributes_of(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                try:
                    result.samples.extend(_metric_samples(metric, resource, result))
                except (DecodeError, ValueError) as exc:
                    result.reject(f"{metric.name}: {exc}")
    return result


def _in_range(point: Any, metric: Metric, result: DecodeResult) -> bool:
    """False (and the point rejected) when its time does not fit the store's BIGINT."""
    if point.time_unix_nano <= INT64_MAX:
        return True
    result.reject(f"{metric.name}: time_unix_nano {point.time_unix_nano} is past 2^63 ns")
    return False


def _labels(kvs: Any) -> dict[str, str]:
    out = {}
    for kv in kvs:
        value = kv.value
        text = value.string_value  # most labels are strings: one accessor (attributes_of)
        out[kv.key] = (text or str(any_value(value)))[:2048]
    return out


def _metric_samples(
    metric: Metric, resource: Mapping[str, Any], result: DecodeResult
) -> Iterator[Sample]:
    which = metric.WhichOneof("data")
    name, unit = metric.name, metric.unit
    if which in ("gauge", "sum"):
        for p in getattr(metric, which).data_points:
            if not _in_range(p, metric, result):
                continue
            value = p.as_double if p.WhichOneof("value") == "as_double" else float(p.as_int)
            yield metric_sample(name, value, unit, p.time_unix_nano, _labels(p.attributes),
                                resource)
    elif which == "histogram":
        for hp in metric.histogram.data_points:
            if not _in_range(hp, metric, result):
                continue
            labels = _labels(hp.attributes)
            t = hp.time_unix_nano
            yield metric_sample(f"{name}.count", float(hp.count), "1", t, labels, resource)
            yield metric_sample(f"{name}.sum", hp.sum, unit, t, labels, resource)
            bounds, counts = list(hp.explicit_bounds), list(hp.bucket_counts)
            for q in (0.5, 0.95):
                estimate = histogram_quantile(q, bounds, counts)
                if estimate is not None:
                    yield metric_sample(f"{name}.p{int(q * 100)}", estimate, unit, t, labels,
                                        resource)
    elif which == "summary":
        for sp in metric.summary.data_points:
            if not _in_range(sp, metric, result):
                continue
            labels = _labels(sp.attributes)
            for qv in sp.quantile_values:
                yield metric_sample(name, qv.value, unit, sp.time_unix_nano,
                                    {**labels, "quantile": str(qv.quantile)}, resource)
    elif which is not None:
        msg = f"unsupported metric type {which}"
        raise DecodeError(msg)


def histogram_quantile(q: float, bounds: list[float], counts: list[int]) -> float | None:
    """Linear interpolation inside the bucket holding quantile *q* (Prometheus' method).

    Returns None for an empty histogram; the upper bound of the last finite bucket when the
    quantile falls in the +Inf bucket.
    """
    total = sum(counts)
    if total == 0 or len(counts) != len(bounds) + 1:
        return None
    rank = q * total
    seen = 0.0
    for i, count in enumerate(counts):
        if seen + count >= rank and count > 0:
            if i == len(bounds):
                return bounds[-1] if bounds else None
            lower = bounds[i - 1] if i > 0 else min(0.0, bounds[0])
            return lower + (bounds[i] - lower) * (rank - seen) / count
        seen += count
    return None


def encode_partial_success(rejected: int, message: str, *, metrics: bool, as_json: bool) -> bytes:
    """The OTLP Export*ServiceResponse body for a 200 reply."""
    response: Any = ExportMetricsServiceResponse() if metrics else ExportTraceServiceResponse()
    if rejected:
        if metrics:
            response.partial_success.rejected_data_points = rejected
        else:
            response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    if as_json:
        return str(json_format.MessageToJson(response, indent=None)).encode()
    return bytes(response.SerializeToString())


__all__ = [
    "BodyTooLarge",
    "DecodeResult",
    "decode_metrics_request",
    "decode_trace_request",
    "decompress",
    "encode_partial_success",
    "histogram_quantile",
    "json_groups",
]
