"""Safety: no heavy imports, no slowdown or exceptions from telemetry, identical results."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import openai
import pytest
import strata.agent.sdk as sdk
from strata.agent.sdk.patching import is_wrapped

from tests.conftest import free_port
from tests.sdk.conftest import Traced, start
from tests.sdk.llm_server import LLMServer
from tests.waiting import loose

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(name="oai")
def oai_fixture(llm: LLMServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=llm.url + "/v1", api_key="test", max_retries=0) as c:
        yield c


def test_import_is_light() -> None:
    """`import strata.agent.sdk` imports no duckdb, fastapi, scikit-learn or LLM client."""
    code = ("import sys, strata.agent.sdk; bad = {'duckdb', 'fastapi', 'sklearn', 'openai', "
            "'anthropic', 'langchain_core'} & set(sys.modules); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_agent_down_does_not_slow_calls(llm: LLMServer, oai: openai.OpenAI,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """With the endpoint unreachable, calls keep their latency and drops are counted."""
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "4")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2")

    def timed(n: int) -> float:
        walls = []
        for _ in range(n):
            t0 = time.perf_counter()
            oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            walls.append(time.perf_counter() - t0)
        return statistics.median(walls)

    plain = timed(30)
    handle = sdk.init("down", endpoint=f"http://127.0.0.1:{free_port()}", set_global=False)
    assert handle is not None
    try:
        traced = timed(60)
        assert handle.spans_dropped > 0
    finally:
        t0 = time.perf_counter()
        sdk.shutdown(timeout_s=1.0)
        assert time.perf_counter() - t0 < loose(1.0)
    assert traced < plain + loose(0.005)


def test_instrumentation_failures_never_reach_the_app(llm: LLMServer, oai: openai.OpenAI) -> None:
    """A failing redaction hook and a malformed response body leave the call untouched."""

    def redact(text: str) -> str:
        raise RuntimeError("hook bug")

    traced = start(capture_content=True, redact=redact)
    try:
        result = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert result.choices[0].message.content == "Hello, world!"
        odd = oai.chat.completions.create(model="malformed", messages=MESSAGES)
        assert odd.id == "x"
        raw = oai.chat.completions.with_raw_response.create(model="raw", messages=MESSAGES)
        assert raw.parse().model == "raw-2024-08-06"
        attrs = traced.span("chat gpt-4o").attributes or {}
        assert "gen_ai.input.messages" not in attrs
        assert "gen_ai.usage.input_tokens" not in (traced.span("chat malformed").attributes or {})
        assert traced.span("chat raw").end_time is not None
    finally:
        sdk.shutdown()


def test_return_values_identical(llm: LLMServer, oai: openai.OpenAI) -> None:
    """Instrumented and plain calls return equal objects of the same types."""
    start()
    try:
        traced = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, seed=1)
        stream = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        traced_chunks = [c.model_dump() for c in stream]
    finally:
        sdk.shutdown()
    plain = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, seed=1)
    plain_stream = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert type(stream) is type(plain_stream)
    assert traced.model_dump() == plain.model_dump()
    assert traced_chunks == [c.model_dump() for c in plain_stream]


def test_init_idempotent_and_reinit(llm: LLMServer, oai: openai.OpenAI) -> None:
    """A second init() returns the same handle and wraps nothing twice; after shutdown()
    a new init() gets a fresh pipeline."""
    from openai.resources.chat.completions import Completions

    first = start()
    try:
        assert sdk.init("other") is first.handle
        assert is_wrapped(Completions, "create")
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert len(first.spans()) == 1
    finally:
        sdk.shutdown()
    assert not is_wrapped(Completions, "create")
    sdk.shutdown()  # twice is fine
    second = start()
    try:
        oai.chat.completions.create(model="again", messages=MESSAGES)
        assert [s.name for s in second.spans()] == ["chat again"]
    finally:
        sdk.shutdown()


def test_content_capture_truncates_and_redacts(oai: openai.OpenAI, traced_off: None) -> None:
    """With capture on, prompts/responses are redacted, then truncated."""
    traced = start(capture_content=True, max_content_chars=120,
                   redact=lambda s: s.replace("alice@example.com", "<email>"))
    try:
        oai.chat.completions.create(model="gpt-4o", messages=[
            {"role": "user", "content": "mail alice@example.com " + "x" * 100}])
        attrs = traced.span("chat gpt-4o").attributes or {}
        captured = str(attrs["gen_ai.input.messages"])
        assert "alice@" not in captured
        assert "<email>" in captured
        assert captured.endswith("…[truncated]")
        assert "Hello, world!" in str(attrs["gen_ai.output.messages"])
    finally:
        sdk.shutdown()


@pytest.fixture(name="traced_off")
def traced_off_fixture() -> None:
    sdk.shutdown()


def test_sampling_ratio_zero_drops_spans_but_keeps_metrics(oai: openai.OpenAI) -> None:
    """sample_ratio=0 exports no spans; the GenAI metrics still count the call."""
    traced: Traced = start(sample_ratio=0.0)
    try:
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert traced.spans() == []
        assert traced.points("gen_ai.client.operation.duration")[0].count == 1
    finally:
        sdk.shutdown()
