"""Strata's records as rows of the Collector's tables (the hub's writes and the forwarder).

A span becomes one ``otel_traces`` row: its attributes and resource as string maps (the
Collector's ``AsString`` forms), with Strata's normalised fields and enrichment written into
the GenAI semantic-convention keys and ``strata.*`` keys that ``strata_schema.sql``
materialises. A sample becomes one ``otel_metrics_gauge`` row (Strata keeps points, not
OTLP's metric kinds) with ``strata.canonical|layer|host|device`` attributes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

import pyarrow as pa
from strata.agent.model import LogRecord, Sample, SpanRecord

SPAN_TABLE: Final = "otel_traces"
SAMPLE_TABLE: Final = "otel_metrics_gauge"
LOG_TABLE: Final = "otel_logs"
_STATUS: Final = {"ok": "Ok", "error": "Error"}  # else "Unset", as the Collector writes it
_KIND: Final = {"internal": "Internal", "server": "Server", "client": "Client",
                "producer": "Producer", "consumer": "Consumer"}
_MAP = pa.map_(pa.string(), pa.string())
_TIME = pa.timestamp("ns", tz="UTC")
SPAN_SCHEMA: Final = pa.schema([
    ("Timestamp", _TIME), ("TraceId", pa.string()), ("SpanId", pa.string()),
    ("ParentSpanId", pa.string()), ("SpanName", pa.string()), ("SpanKind", pa.string()),
    ("ServiceName", pa.string()), ("ResourceAttributes", _MAP), ("SpanAttributes", _MAP),
    ("Duration", pa.uint64()), ("StatusCode", pa.string()),
])
SAMPLE_SCHEMA: Final = pa.schema([
    ("ResourceAttributes", _MAP), ("ServiceName", pa.string()), ("MetricName", pa.string()),
    ("MetricUnit", pa.string()), ("Attributes", _MAP), ("TimeUnix", _TIME),
    ("Value", pa.float64()),
])
LOG_SCHEMA: Final = pa.schema([
    ("Timestamp", _TIME), ("TraceId", pa.string()), ("SpanId", pa.string()),
    ("SeverityText", pa.string()), ("SeverityNumber", pa.uint8()), ("ServiceName", pa.string()),
    ("Body", pa.string()), ("ResourceAttributes", _MAP), ("LogAttributes", _MAP),
    ("EventName", pa.string()),
])
CostColumns = tuple[float | None, str | None, float | None, str | None, float | None]
_COST_KEYS: Final = ("gen_ai.usage.cost.usd", "strata.cost.source", "strata.energy.wh",
                     "strata.energy.source", "strata.co2e.g")


def _text(value: Any) -> str:
    if type(value) is str:  # the common case first: this runs per attribute on ingest
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _pairs(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(k, _text(v)) for k, v in values.items() if v is not None]


def _sorted_map(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Pairs sorted by key: equal maps are equal rows (ClickHouse groups maps by order)."""
    return sorted(_pairs(values))


def span_attributes(span: SpanRecord, cost: CostColumns | None = None) -> list[tuple[str, str]]:
    """The span's attributes with its normalised fields and enrichment in the hot keys."""
    attrs: dict[str, Any] = dict(span.attributes)
    fields: list[tuple[str, Any]] = [
        ("strata.layer", span.layer.value), ("gen_ai.operation.name", span.operation),
        ("gen_ai.provider.name", span.provider), ("gen_ai.system", None),
        ("gen_ai.request.model", span.request_model),
        ("gen_ai.response.model", span.response_model),
        ("gen_ai.usage.input_tokens", span.input_tokens),
        ("gen_ai.usage.output_tokens", span.output_tokens),
        ("error.type", span.error_type), ("strata.team", span.team),
        ("strata.host", span.host)]
    if cost is not None:  # priced here; else keep what a sidecar's enrichment carried
        fields += zip(_COST_KEYS, cost, strict=True)
    for key, value in fields:
        if value is None:
            attrs.pop(key, None)  # a raw value the normaliser rejected must not reappear
        else:
            attrs[key] = value
    return _pairs(attrs)  # never grouped by: insertion order is fine


def spans_table(spans: Sequence[SpanRecord],
                costs: Sequence[CostColumns] | None = None) -> pa.Table:
    """``otel_traces`` rows of *spans* (*costs*: one per span when priced at ingest)."""
    resources: dict[tuple[int, str, str | None], list[tuple[str, str]]] = {}

    def resource(span: SpanRecord) -> list[tuple[str, str]]:
        # spans of one request share their resource map: encode it once
        key = (id(span.resource), span.service, span.service_version)
        cached = resources.get(key)
        if cached is None:
            values = dict(span.resource)
            values["service.name"] = span.service
            if span.service_version is not None:
                values["service.version"] = span.service_version
            cached = resources[key] = _pairs(values)
        return cached

    return pa.Table.from_pydict({
        "Timestamp": [s.start_unix_nano for s in spans],
        "TraceId": [s.trace_id for s in spans],
        "SpanId": [s.span_id for s in spans],
        "ParentSpanId": [s.parent_span_id or "" for s in spans],
        "SpanName": [s.name for s in spans],
        "SpanKind": [_KIND.get(s.kind.lower(), s.kind) for s in spans],
        "ServiceName": [s.service for s in spans],
        "ResourceAttributes": [resource(s) for s in spans],
        "SpanAttributes": [span_attributes(s, costs[i] if costs else None)
                           for i, s in enumerate(spans)],
        "Duration": [max(0, s.end_unix_nano - s.start_unix_nano) for s in spans],
        "StatusCode": [_STATUS.get(s.status, "Unset") for s in spans],
    }, schema=SPAN_SCHEMA)


def samples_table(samples: Sequence[Sample]) -> pa.Table:
    """``otel_metrics_gauge`` rows of *samples*."""
    def attributes(s: Sample) -> list[tuple[str, str]]:
        values: dict[str, Any] = dict(s.attributes)
        values.update({"strata.canonical": s.canonical, "strata.layer": str(s.layer),
                       "strata.host": s.host, "strata.device": s.device})
        return _sorted_map(values)

    return pa.Table.from_pydict({
        "ResourceAttributes": [[] for _ in samples],
        "ServiceName": [s.service or "" for s in samples],
        "MetricName": [s.name for s in samples],
        "MetricUnit": [s.unit for s in samples],
        "Attributes": [attributes(s) for s in samples],
        "TimeUnix": [s.time_unix_nano for s in samples],
        "Value": [s.value for s in samples],
    }, schema=SAMPLE_SCHEMA)


def logs_table(logs: Sequence[LogRecord]) -> pa.Table:
    """``otel_logs`` rows of *logs* (already redacted at ingest); a span event is marked with
    ``strata.span_event`` and an exception's type kept as ``exception.type``."""
    def attributes(r: LogRecord) -> list[tuple[str, str]]:
        values: dict[str, Any] = dict(r.attributes)
        if r.error_type is not None:
            values["exception.type"] = r.error_type
        if r.span_event:
            values["strata.span_event"] = True
        return _sorted_map(values)

    return pa.Table.from_pydict({
        "Timestamp": [r.time_unix_nano for r in logs],
        "TraceId": [r.trace_id or "" for r in logs],
        "SpanId": [r.span_id or "" for r in logs],
        "SeverityText": [r.severity_text or "" for r in logs],
        "SeverityNumber": [max(0, min(255, r.severity_number)) for r in logs],
        "ServiceName": [r.service for r in logs],
        "Body": ["" if r.body is None else _text(r.body) for r in logs],
        "ResourceAttributes": [_sorted_map(r.resource) for r in logs],
        "LogAttributes": [attributes(r) for r in logs],
        "EventName": [r.event_name or "" for r in logs],
    }, schema=LOG_SCHEMA)
