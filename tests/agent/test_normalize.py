"""Redaction at ingest: every content key family, structured values, span events, and
failing closed (RELIABILITY P2, P4), through the real OTLP decoder and a real DuckDB file."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from strata.agent import semconv
from strata.agent.ingest.normalize import IngestPolicy
from strata.agent.ingest.otlp_codec import decode_trace_request
from strata.agent.store.db import DuckDBStore

from tests.otlp_factory import genai_attributes, key_values, make_span, trace_request

CANARY = "CANARY-p2-51e0"
POLICY = IngestPolicy(salt="s")


def _message(role: str, text: str) -> AnyValue:
    return AnyValue(kvlist_value=KeyValueList(values=[
        KeyValue(key="role", value=AnyValue(string_value=role)),
        KeyValue(key="content", value=AnyValue(string_value=text))]))


def canary_span() -> Span:
    """A span with the canary under every exact key, every prefix family, a structured
    role/content value on an unknown key, and in a span event."""
    attributes = {key: f"{CANARY} {key}" for key in sorted(semconv.CONTENT_KEYS)}
    attributes.update({f"{prefix}0.content": CANARY for prefix in semconv.CONTENT_PREFIXES})
    span = make_span(attributes={**genai_attributes(), **attributes})
    messages = [_message("user", CANARY + " " + "q" * 600), _message("assistant", "a" * 600)]
    span.attributes.append(KeyValue(key="app.request.messages", value=AnyValue(
        array_value=ArrayValue(values=messages))))
    event = span.events.add(name="gen_ai.user.message", time_unix_nano=span.start_time_unix_nano)
    event.attributes.extend(key_values({"content": CANARY, "gen_ai.prompt": CANARY}))
    return span


def test_every_content_family_is_redacted_before_the_file(tmp_path: Path) -> None:
    """P2: exact keys, prefixes, structured role/content values and span events: no canary
    in the decoded span nor in the DuckDB file and WAL bytes; lengths and hashes are kept."""
    body = trace_request([canary_span()]).SerializeToString()
    result = decode_trace_request(body, is_json=False, policy=POLICY)
    (span,) = result.spans
    assert result.rejected == 0
    assert CANARY not in repr(span)
    for key in semconv.CONTENT_KEYS:
        assert str(span.attributes[key]).startswith("[redacted len="), key
    assert str(span.attributes["app.request.messages"]).startswith("[redacted len=")
    assert span.attributes["gen_ai.request.model"] == "gpt-4o"
    store = DuckDBStore(tmp_path / "s.duckdb")
    store.write_batch(result.spans)
    for path in tmp_path.iterdir():  # the WAL, before any checkpoint
        assert CANARY.encode() not in path.read_bytes(), path.name
    store.close()
    assert CANARY.encode() not in (tmp_path / "s.duckdb").read_bytes()


def test_redaction_failure_drops_the_attribute_and_counts(tmp_path: Path) -> None:
    """P4: when redaction raises (here: a salt that cannot be encoded), the content attribute
    is dropped, never stored raw; the span is still accepted and the failure counted."""
    broken = IngestPolicy(salt="\ud800")
    span = make_span(attributes={**genai_attributes(), "gen_ai.input.messages": CANARY,
                                 "gen_ai.prompt.0.content": CANARY})
    result = decode_trace_request(trace_request([span]).SerializeToString(), is_json=False,
                                  policy=broken)
    (record,) = result.spans
    assert result.rejected == 0
    assert result.redaction_failures == 2
    assert "gen_ai.input.messages" not in record.attributes
    assert CANARY not in repr(record)
    assert record.input_tokens == 120


@pytest.mark.parametrize("capture", [False, True])
def test_small_structured_values_are_not_content(capture: bool) -> None:
    """P2 heuristic bound: a short list on an unknown key is kept as is (no false positive)."""
    span = make_span(attributes={"app.tags": "x"})
    span.attributes.append(KeyValue(key="app.list", value=AnyValue(array_value=ArrayValue(
        values=[AnyValue(string_value="role"), AnyValue(string_value="content")]))))
    result = decode_trace_request(trace_request([span]).SerializeToString(), is_json=False,
                                  policy=IngestPolicy(salt="s", capture_content=capture))
    assert result.spans[0].attributes["app.list"] == ["role", "content"]


def test_a_server_span_reporting_a_model_and_tokens_is_serving() -> None:
    """vLLM's ``llm_request`` span has no operation name; a server span without usage stays
    orchestration, as does a client span with usage but no operation."""
    policy = IngestPolicy(salt="s")
    vllm = {"gen_ai.response.model": "llama", "gen_ai.usage.prompt_tokens": 8}
    spans = [make_span(kind=Span.SPAN_KIND_SERVER, attributes=vllm),
             make_span(kind=Span.SPAN_KIND_SERVER, attributes={"gen_ai.response.model": "x"}),
             make_span(kind=Span.SPAN_KIND_CLIENT, attributes=vllm)]
    result = decode_trace_request(trace_request(spans).SerializeToString(), is_json=False,
                                  policy=policy)
    assert [s.layer.value for s in result.spans] == ["serving", "orchestration",
                                                     "orchestration"]


@pytest.mark.parametrize("tokens", ["99999999999999999999", "-1e400", 1e300, "²", 2.0**63])
def test_a_token_count_the_column_cannot_hold_is_left_out(tokens: object) -> None:
    """Promoted integer columns are BIGINT: a count outside it is not promoted (the attribute
    is kept), so it cannot fail the group commit it would be written in."""
    attrs = {**genai_attributes(), "gen_ai.usage.input_tokens": tokens}
    body = trace_request([make_span(attributes=attrs)]).SerializeToString()
    (record,) = decode_trace_request(body, is_json=False, policy=POLICY).spans
    assert record.input_tokens is None
    assert record.output_tokens == 40


def test_a_span_event_past_2262_is_dated_by_its_span_not_rejected() -> None:
    span = make_span(start_ns=1_700_000_000_000_000_000)
    span.events.add(time_unix_nano=1 << 63, name="gen_ai.choice")
    span.events.add(time_unix_nano=1_700_000_000_500_000_000, name="exception")
    result = decode_trace_request(trace_request([span]).SerializeToString(), is_json=False,
                                  policy=POLICY)
    assert result.rejected == 0
    assert [(r.event_name, r.time_unix_nano) for r in result.logs] == [
        ("gen_ai.choice", 1_700_000_000_000_000_000),
        ("exception", 1_700_000_000_500_000_000)]
