"""Build real OTLP protobuf requests (opentelemetry-proto) for tests and benchmarks."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Metric,
    NumberDataPoint,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


def key_values(attributes: Mapping[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()]


def make_span(
    *,
    trace_id: bytes | None = None,
    span_id: bytes | None = None,
    parent_span_id: bytes = b"",
    name: str = "chat gpt-4o",
    start_ns: int = 1_700_000_000_000_000_000,
    duration_ns: int = 250_000_000,
    attributes: Mapping[str, Any] | None = None,
    error: bool = False,
    kind: int = Span.SPAN_KIND_CLIENT,
) -> Span:
    return Span(
        trace_id=trace_id or os.urandom(16),
        span_id=span_id or os.urandom(8),
        parent_span_id=parent_span_id,
        name=name,
        kind=kind,
        start_time_unix_nano=start_ns,
        end_time_unix_nano=start_ns + duration_ns,
        attributes=key_values(attributes or {}),
        status=Status(code=Status.STATUS_CODE_ERROR if error else Status.STATUS_CODE_OK),
    )


def genai_attributes(model: str = "gpt-4o", input_tokens: int = 120,
                     output_tokens: int = 40) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
    }


def trace_request(
    spans: Sequence[Span], resource: Mapping[str, Any] | None = None
) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = ResourceSpans()
    rs.resource.attributes.extend(key_values(resource or {"service.name": "rag-api"}))
    rs.scope_spans.append(ScopeSpans(spans=list(spans)))
    request.resource_spans.append(rs)
    return request


def gauge_request(
    name: str, value: float, time_ns: int, labels: Mapping[str, Any] | None = None,
    resource: Mapping[str, Any] | None = None, unit: str = "",
) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.extend(key_values(resource or {"service.name": "node-a"}))
    metric = Metric(name=name, unit=unit)
    metric.gauge.data_points.append(
        NumberDataPoint(time_unix_nano=time_ns, as_double=value,
                        attributes=key_values(labels or {}))
    )
    rm.scope_metrics.add().metrics.append(metric)
    return request


def counter_request(
    name: str, points: Sequence[tuple[int, float]], *, start_ns: int,
    labels: Mapping[str, Any] | None = None, resource: Mapping[str, Any] | None = None,
    unit: str = "",
) -> ExportMetricsServiceRequest:
    """A cumulative monotonic Sum with a start time, as a Collector's Prometheus receiver
    pushes a scraped counter (``points``: (time, value) pairs)."""
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.extend(key_values(resource or {"service.name": "dcgm-exporter"}))
    metric = Metric(name=name, unit=unit)
    metric.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    metric.sum.is_monotonic = True
    for time_ns, value in points:
        metric.sum.data_points.append(NumberDataPoint(
            start_time_unix_nano=start_ns, time_unix_nano=time_ns, as_double=value,
            attributes=key_values(labels or {})))
    rm.scope_metrics.add().metrics.append(metric)
    return request
