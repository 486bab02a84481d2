"""The fast OTLP span encoder writes the same message as the stock encoder."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from strata.agent.protowire import varint
from strata.agent.sdk.otlp_encoder import SpanEncoder


def test_same_message_as_stock_encoder() -> None:
    """Resources, scopes, every attribute type, events, links and status round-trip."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "x", "team": "t"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    attrs = {"s": "v", "i": 11, "neg": -5, "big": 2**40, "f": 0.25, "b": True,
             "strs": ["a", "b"], "ints": [1, 2], "floats": [0.5], "bools": [True, False]}
    for i, tracer in enumerate([provider.get_tracer("a", "1.0"), provider.get_tracer("b")]):
        parent = tracer.start_span("parent", kind=SpanKind.CLIENT, attributes=attrs)
        child = tracer.start_span("child", context=trace.set_span_in_context(parent),
                                  links=[Link(parent.get_span_context(), {"n": i})])
        child.add_event("ev", {"k": "v"})
        child.set_status(Status(StatusCode.ERROR, "bad"))
        child.end()
        parent.set_status(Status(StatusCode.OK))
        parent.end()
    spans = exporter.get_finished_spans()
    ours = ExportTraceServiceRequest.FromString(SpanEncoder().encode(spans))
    assert ours == encode_spans(spans)


def test_varint() -> None:
    """Varints match the protobuf encoding, including 64-bit two's complement negatives."""
    assert varint(1) == b"\x01"
    assert varint(300) == b"\xac\x02"
    assert varint(-1) == b"\xff" * 9 + b"\x01"


def test_same_pair_in_resource_span_and_event_keeps_each_field() -> None:
    """The cache of encoded key=value pairs is per field: a pair shared by the resource, a span
    and an event is written as each one's attribute, not as the first one's."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "x", "k": "v"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("a").start_span("s", attributes={"k": "v", "service.name": "x"})
    span.add_event("ev", {"k": "v"})
    span.end()
    spans = exporter.get_finished_spans()
    ours = ExportTraceServiceRequest.FromString(SpanEncoder().encode(spans))
    assert ours == encode_spans(spans)
