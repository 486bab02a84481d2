"""The forwarder's encoder: what ingest kept goes out as valid OTLP, enriched, never raw."""

from __future__ import annotations

import os

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from strata.agent.ingest.normalize import IngestPolicy
from strata.agent.ingest.otlp_codec import (
    any_value,
    attributes_of,
    decode_metrics_request,
    decode_trace_request,
)
from strata.exporters.otlp_encode import (
    CO2E_G,
    COST_USD,
    ENERGY_SOURCE,
    ENERGY_WH,
    LAYER,
    encode_any_value,
    encode_metrics_request,
    encode_trace_request,
)

from tests.otlp_factory import gauge_request, genai_attributes, make_span, trace_request

POLICY = IngestPolicy(salt="test-salt")
CANARY = "CANARY-7f3e-prompt-text"


def decoded_spans(request: ExportTraceServiceRequest):
    result = decode_trace_request(request.SerializeToString(), is_json=False, policy=POLICY)
    assert result.rejected == 0
    return result.spans


def parse_traces(body: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return request


def test_spans_round_trip_with_enrichment_and_shared_resources() -> None:
    root = make_span(name="invoke_workflow rag", attributes={
        "gen_ai.operation.name": "invoke_workflow", "user.id": "u1"})
    llm = make_span(trace_id=root.trace_id, parent_span_id=root.span_id, name="chat gpt-4o",
                    attributes={**genai_attributes(), "gen_ai.input.messages": CANARY * 100},
                    error=True)
    spans = decoded_spans(trace_request([root, llm], {"service.name": "rag-api",
                                                      "service.version": "1.2.3"}))
    costs = [None, (0.0042, "price-table", 0.31, "estimate:per-1k-tokens", 0.15)]
    out = parse_traces(encode_trace_request(spans, costs))

    assert len(out.resource_spans) == 1  # both spans shared one resource in the request
    rs = out.resource_spans[0]
    assert attributes_of(rs.resource.attributes) == {"service.name": "rag-api",
                                                     "service.version": "1.2.3"}
    assert rs.scope_spans[0].scope.name == "strata.forward"
    got = list(rs.scope_spans[0].spans)
    assert [s.span_id for s in got] == [root.span_id, llm.span_id]
    assert got[1].parent_span_id == root.span_id
    assert got[1].trace_id == root.trace_id
    assert got[1].status.code == llm.status.code
    assert got[1].kind == llm.kind
    assert got[1].start_time_unix_nano == llm.start_time_unix_nano
    assert got[1].end_time_unix_nano == llm.end_time_unix_nano
    first, second = attributes_of(got[0].attributes), attributes_of(got[1].attributes)
    assert first == {**spans[0].attributes, LAYER: "orchestration"}  # unpriced: no cost keys
    assert second == {**spans[1].attributes, LAYER: "model", COST_USD: 0.0042, ENERGY_WH: 0.31,
                      ENERGY_SOURCE: "estimate:per-1k-tokens", CO2E_G: 0.15}
    # what went out is the redacted record, not the prompt
    assert second["gen_ai.input.messages"].startswith("[redacted len=")
    assert CANARY.encode() not in encode_trace_request(spans, costs)


def test_re_decoding_the_output_gives_the_same_records() -> None:
    spans = decoded_spans(trace_request([make_span(attributes=genai_attributes())
                                         for _ in range(20)]))
    again = decoded_spans(parse_traces(encode_trace_request(spans)))
    for before, after in zip(spans, again, strict=True):
        assert after.attributes == {**before.attributes, LAYER: before.layer.value}
        assert (after.trace_id, after.span_id, after.service, after.layer, after.input_tokens,
                after.request_model) == (before.trace_id, before.span_id, before.service,
                                         before.layer, before.input_tokens, before.request_model)


def test_spans_from_different_resources_stay_apart() -> None:
    a = decoded_spans(trace_request([make_span()], {"service.name": "a"}))
    b = decoded_spans(trace_request([make_span(), make_span()], {"service.name": "b"}))
    out = parse_traces(encode_trace_request([*a, *b]))
    assert [len(rs.scope_spans[0].spans) for rs in out.resource_spans] == [1, 2]


@pytest.mark.parametrize("value", [
    "text", "", "ünïcødé 🚀", True, False, 0, 1, -1, 2**63 - 1, -(2**63), 3.5, -0.25,
    [1, "two", 3.0, [True]], {"k": "v", "n": {"deep": [1, 2]}}, [],
])
def test_any_value_matches_the_generated_classes(value: object) -> None:
    parsed = AnyValue()
    parsed.ParseFromString(encode_any_value(value))  # type: ignore[arg-type]
    assert any_value(parsed) == value
    assert parsed == reference_any_value(value)


def reference_any_value(value: object) -> AnyValue:
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[reference_any_value(v) for v in value]))
    assert isinstance(value, dict)
    return AnyValue(kvlist_value=KeyValueList(values=[
        KeyValue(key=k, value=reference_any_value(v)) for k, v in value.items()]))


def test_huge_int_and_none_values() -> None:
    parsed = AnyValue()
    parsed.ParseFromString(encode_any_value(2**70))
    assert parsed.string_value == str(2**70)
    assert encode_any_value(None) == b""


def test_big_span_with_long_values_is_valid() -> None:
    long = "x" * 70_000  # length varints over two bytes, attribute cache bypassed
    spans = decoded_spans(trace_request([make_span(name="n" * 300,
                                                   attributes={"app.blob": long})]))
    out = parse_traces(encode_trace_request(spans))
    assert attributes_of(out.resource_spans[0].scope_spans[0].spans[0].attributes)["app.blob"] \
        == spans[0].attributes["app.blob"]


def test_samples_become_gauges_grouped_by_resource_and_name() -> None:
    t = 1_700_000_000_000_000_000
    requests = [
        gauge_request("DCGM_FI_DEV_GPU_TEMP", 71.0, t, {"gpu": "0", "UUID": "GPU-a"},
                      {"service.name": "node", "host.name": "h1"}, unit="Cel"),
        gauge_request("DCGM_FI_DEV_GPU_TEMP", 73.0, t + 1, {"gpu": "1", "UUID": "GPU-b"},
                      {"service.name": "node", "host.name": "h1"}, unit="Cel"),
        gauge_request("vllm:num_requests_waiting", 4.0, t, {}, {"service.name": "vllm"}),
    ]
    samples = [s for r in requests
               for s in decode_metrics_request(r.SerializeToString(), is_json=False).samples]
    out = ExportMetricsServiceRequest()
    out.ParseFromString(encode_metrics_request(samples))
    assert len(out.resource_metrics) == 2
    first = out.resource_metrics[0]
    assert attributes_of(first.resource.attributes) == {"service.name": "node", "host.name": "h1"}
    metric = first.scope_metrics[0].metrics[0]
    assert (metric.name, metric.unit) == ("DCGM_FI_DEV_GPU_TEMP", samples[0].unit)
    points = metric.gauge.data_points
    assert [p.as_double for p in points] == [samples[0].value, samples[1].value]
    assert [p.time_unix_nano for p in points] == [t, t + 1]
    assert attributes_of(points[1].attributes) == {"gpu": "1", "UUID": "GPU-b",
                                                   LAYER: "infrastructure"}
    # and the upstream Strata decodes it back to the same samples
    again = decode_metrics_request(out.SerializeToString(), is_json=False).samples
    assert [(s.name, s.value, s.time_unix_nano, s.host, s.service) for s in again] == [
        (s.name, s.value, s.time_unix_nano, s.host, s.service) for s in samples]


def test_random_ids_round_trip() -> None:
    spans = decoded_spans(trace_request([make_span(trace_id=os.urandom(16), span_id=os.urandom(8))
                                         for _ in range(50)]))
    out = parse_traces(encode_trace_request(spans))
    assert [s.span_id.hex() for s in out.resource_spans[0].scope_spans[0].spans] == [
        s.span_id for s in spans]
