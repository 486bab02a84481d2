"""``otel_traces`` rows of spans (``rows.spans_table``: the hub's writes and the forwarder's
encoder), entry by entry: the columnar encoder must give each span exactly its own map."""

from __future__ import annotations

from datetime import UTC, datetime

from strata.agent.model import Layer, SpanRecord
from strata.agent.store.clickhouse.rows import SPAN_SCHEMA, spans_table

from tests.agent.store.rows import T0, TRACE_A, S, span

_RESOURCE = {"service.name": "raw-name", "host.name": "node-1", "k8s.pod.uid": None}
_PRICED = (0.25, "price-table", 1.5e-06, "model-estimate", None)


def _llm() -> SpanRecord:
    return span("s1", 0, 1.5, parent_span_id="s0", operation="chat", provider="openai",
                request_model="gpt-4o", response_model=None, input_tokens=120, output_tokens=0,
                team="search", host="node-1", service_version="1.2", resource=_RESOURCE,
                attributes={"gen_ai.request.model": "gpt-4o ", "gen_ai.response.model": "x",
                            "gen_ai.system": "openai", "server.port": 443, "stream": True,
                            "ratio": 0.5, "tags": ["a", "b"], "gone": None,
                            "gen_ai.usage.cost.usd": "9", "strata.co2e.g": "1",
                            "server.address": "api.openai.com"})


def test_each_span_gets_its_attributes_less_the_owned_keys_then_its_fields() -> None:
    tool = span("s2", 1, 1.2, kind="INTERNAL", status="error", layer=Layer.ORCHESTRATION,
                error_type="Timeout", resource=_RESOURCE, service_version="1.2",
                attributes={"tool.name": "search", "gen_ai.usage.cost.usd": "0.5"})
    bare = span("s3", 2, 1, kind="weird", status="unset", service="other")
    rows = spans_table([_llm(), tool, bare]).to_pylist()  # unpriced: raw cost keys stay
    resource = [("service.name", "svc"), ("host.name", "node-1"), ("service.version", "1.2")]
    assert rows[0] == {
        "Timestamp": datetime.fromtimestamp(T0 // S, UTC), "TraceId": TRACE_A,
        "SpanId": "s1", "ParentSpanId": "s0", "SpanName": "s1", "SpanKind": "Client",
        "ServiceName": "svc", "ResourceAttributes": resource,
        "SpanAttributes": [
            ("server.port", "443"), ("stream", "true"), ("ratio", "0.5"),
            ("tags", '["a","b"]'), ("gen_ai.usage.cost.usd", "9"), ("strata.co2e.g", "1"),
            ("server.address", "api.openai.com"), ("strata.layer", "model"),
            ("gen_ai.operation.name", "chat"), ("gen_ai.provider.name", "openai"),
            ("gen_ai.request.model", "gpt-4o"), ("gen_ai.usage.input_tokens", "120"),
            ("gen_ai.usage.output_tokens", "0"), ("strata.team", "search"),
            ("strata.host", "node-1")],
        "Duration": 1_500_000_000, "StatusCode": "Ok"}
    assert [(r["SpanKind"], r["StatusCode"], r["Duration"]) for r in rows[1:]] == [
        ("Internal", "Error", 200_000_000), ("weird", "Unset", 0)]  # a negative duration: 0
    assert rows[1]["ResourceAttributes"] == resource  # the same resource, encoded once
    assert rows[1]["SpanAttributes"] == [
        ("tool.name", "search"), ("gen_ai.usage.cost.usd", "0.5"),
        ("strata.layer", "orchestration"), ("error.type", "Timeout")]
    assert rows[2]["ResourceAttributes"] == [("service.name", "other")]
    assert rows[2]["SpanAttributes"] == [("strata.layer", "model")]


def test_priced_spans_carry_the_writers_costs_and_none_removes_a_raw_one() -> None:
    rows = spans_table([_llm()], [_PRICED]).to_pylist()
    assert rows[0]["SpanAttributes"][-5:] == [
        ("strata.host", "node-1"), ("gen_ai.usage.cost.usd", "0.25"),
        ("strata.cost.source", "price-table"), ("strata.energy.wh", "1.5e-06"),
        ("strata.energy.source", "model-estimate")]  # co2e None: the raw "1" is gone
    assert ("strata.co2e.g", "1") not in rows[0]["SpanAttributes"]


def test_a_service_version_differing_on_one_resource_is_its_own_map() -> None:
    one = {"host.name": "n"}
    spans = [span(f"s{i}", i, i + 1, resource=one, service_version=v)
             for i, v in enumerate(["1", "2", "1", None])]
    maps = [r["ResourceAttributes"] for r in spans_table(spans).to_pylist()]
    assert maps == [[("host.name", "n"), ("service.name", "svc"), ("service.version", "1")],
                    [("host.name", "n"), ("service.name", "svc"), ("service.version", "2")],
                    [("host.name", "n"), ("service.name", "svc"), ("service.version", "1")],
                    [("host.name", "n"), ("service.name", "svc")]]


def test_no_spans_is_an_empty_table() -> None:
    table = spans_table([])
    assert table.num_rows == 0
    assert table.schema == SPAN_SCHEMA
