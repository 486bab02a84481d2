"""The trace decoder builds the store's columns directly (``agent/ingest/span_columns.py``):
they must be what the store would build from the same spans as SpanRecords, and its one-pass
attribute reading must clean exactly as ``clean_attributes`` does."""

from __future__ import annotations

import hashlib

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from strata.agent.ingest.decoding import decode_traces
from strata.agent.ingest.normalize import IngestPolicy, clean_attributes, redact
from strata.agent.ingest.otlp_codec import attributes_of, cleaned_attributes_of
from strata.agent.store.db import spans_to_arrow
from strata.analytics.attribution import IngestPricer
from strata.analytics.pricing import PriceTable

from tests.otlp_factory import genai_attributes, key_values, make_span, trace_request

POLICY = IngestPolicy(salt="s")
ATTRIBUTE_SETS = [
    {"app.attr": "v" * 40, "http.status_code": 200, "ratio": 0.5, "ok": True},
    {**genai_attributes(), "gen_ai.input.messages": "Q" * 2048, "server.address": "api"},
    {"llm.model_name": "gpt-4o", "gen_ai.request.model": "gpt-4o-mini"},  # alias + canonical
    {"llm.token_count.prompt": 12, "app.long": "x" * 70_000},  # alias; truncated value
    {"app.note": '{"role": "user", "content": "' + "z" * 1100 + '"}'},  # content heuristic
    {f"k{i}": i for i in range(200)},  # over the attribute limit
]


def _span(attributes: dict[str, object], **kwargs: object) -> Span:
    span = make_span(attributes=attributes, **kwargs)  # type: ignore[arg-type]
    span.attributes.append(KeyValue(key="app.blob", value=AnyValue(bytes_value=b"\x01" * 600)))
    span.attributes.append(KeyValue(key="app.list", value=AnyValue(array_value=ArrayValue(
        values=[AnyValue(string_value="a"), AnyValue(int_value=2)]))))
    return span


@pytest.mark.parametrize("attributes", ATTRIBUTE_SETS)
def test_one_pass_reading_cleans_as_clean_attributes(attributes: dict[str, object]) -> None:
    kvs = _span(attributes).attributes
    for _ in range(2):  # the second pass sees the keys already classified (the fast path)
        fast = cleaned_attributes_of(kvs, POLICY)
        slow = clean_attributes(attributes_of(kvs), POLICY)
        assert (fast.attributes, fast.dropped, fast.redaction_failures) == (
            slow.attributes, slow.dropped, slow.redaction_failures)
        assert list(fast.attributes) == list(slow.attributes)  # same order: same JSON


def test_columns_are_the_stores_columns_of_the_same_spans() -> None:
    spans = [_span(a) for a in ATTRIBUTE_SETS]
    spans.append(_span(genai_attributes("claude-sonnet-4-5"), error=True,
                       parent_span_id=b"\x07" * 8, kind=Span.SPAN_KIND_SERVER))
    spans[-1].events.add(name="exception", time_unix_nano=spans[-1].start_time_unix_nano,
                         attributes=key_values({"exception.type": "TimeoutError"}))
    spans.append(make_span(start_ns=0))  # rejected alone
    body = trace_request(spans, {"service.name": "rag-api", "service.version": "2.0",
                                 "team": "search", "host.name": "node-1"})
    pricer = IngestPricer(PriceTable.load(None), 1.2, 400.0)
    decoded = decode_traces(body.SerializeToString(), "", as_json=False, policy=POLICY,
                            limit=1 << 24, price=pricer)
    records = decoded.result.spans
    assert decoded.result.rejected == 1
    assert decoded.span_table is not None
    assert decoded.span_table.equals(spans_to_arrow(records, 0, pricer(records)))
    assert records[-1].error_type == "TimeoutError"
    assert decoded.span_table.column("cost_usd").null_count < len(records)  # some priced


def test_a_prompt_over_2_kib_hashes_as_one_salted_sha256() -> None:
    text = "é" * 1500 + "Q" * 3000  # multi-byte characters across the 2047-byte steps
    digest = hashlib.sha256(b"s" + text.encode()).hexdigest()[:32]
    assert redact(text, "s") == f"[redacted len={len(text)} sha256={digest}]"
