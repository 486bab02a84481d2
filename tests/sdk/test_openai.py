"""OpenAI instrumentation: the real openai client against the local wire-format server."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tests.sdk import llm_server as srv
from tests.sdk.conftest import Traced
from tests.sdk.llm_server import LLMServer

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(name="oai")
def oai_fixture(llm: LLMServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=llm.url + "/v1", api_key="test", max_retries=0) as c:
        yield c


def aclient(llm: LLMServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=llm.url + "/v1", api_key="test", max_retries=0)


def test_chat_completion_span(traced: Traced, llm: LLMServer, oai: openai.OpenAI) -> None:
    """A chat completion yields one CLIENT span with request, response and usage attributes."""
    oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=0.2,
                                        max_tokens=50)
    span = traced.span("chat gpt-4o")
    assert span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes or {})
    port = int(llm.url.rsplit(":", 1)[1])
    assert attrs == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o", "server.address": "127.0.0.1", "server.port": port,
        "gen_ai.request.temperature": 0.2, "gen_ai.request.max_tokens": 50,
        "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": srv.USAGE_INPUT,
        "gen_ai.usage.output_tokens": srv.USAGE_OUTPUT,
        "gen_ai.usage.cache_read.input_tokens": srv.USAGE_CACHED,
        "gen_ai.usage.reasoning.output_tokens": srv.USAGE_REASONING,
    }
    assert span.resource.attributes["service.name"] == "test-app"
    assert span.resource.attributes["service.version"] == "1.2.3"
    assert span.resource.attributes["team"] == "search"
    assert span.resource.attributes["deployment.environment.name"] == "test"


def test_metrics_recorded(traced: Traced, oai: openai.OpenAI) -> None:
    """Token usage (input/output) and duration histograms carry the GenAI attributes."""
    oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    points = traced.points("gen_ai.client.token.usage")
    tokens = {p.attributes["gen_ai.token.type"]: p for p in points}
    assert tokens["input"].sum == srv.USAGE_INPUT
    assert tokens["output"].sum == srv.USAGE_OUTPUT
    assert tokens["input"].attributes["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    (duration,) = traced.points("gen_ai.client.operation.duration")
    assert duration.count == 1
    assert duration.attributes["gen_ai.request.model"] == "gpt-4o"
    assert list(duration.explicit_bounds)[:3] == [0.01, 0.02, 0.04]


def test_stream_with_usage(traced: Traced, oai: openai.OpenAI) -> None:
    """A stream is returned as-is; its span ends when exhausted, with usage and TTFT."""
    stream = oai.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True})
    assert type(stream) is openai.Stream
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == srv.TEXT
    attrs = traced.span("chat gpt-4o").attributes or {}
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.usage.input_tokens"] == srv.USAGE_INPUT
    assert attrs["gen_ai.usage.output_tokens"] == srv.USAGE_OUTPUT
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.response.time_to_first_chunk"] > 0
    assert traced.points("gen_ai.client.operation.time_to_first_chunk")[0].count == 1


def test_stream_closed_early_and_garbage_collected(traced: Traced, oai: openai.OpenAI) -> None:
    """Closing a stream, or dropping it unread, ends its span."""
    c = oai
    stream = c.chat.completions.create(model="closed", messages=MESSAGES, stream=True)
    next(iter(stream))
    stream.close()
    assert traced.span("chat closed").end_time is not None
    dropped = c.chat.completions.create(model="dropped", messages=MESSAGES, stream=True)
    del dropped
    gc.collect()
    assert "gen_ai.usage.input_tokens" not in (traced.span("chat dropped").attributes or {})


def test_stream_helper_and_tool_calls(traced: Traced, oai: openai.OpenAI) -> None:
    """The .stream() helper goes through create(); tool calls are named on the span."""
    tools: list[Any] = [{"type": "function", "function": {"name": "get_weather",
                                                          "parameters": {"type": "object"}}}]
    with oai.chat.completions.stream(model="gpt-4o", messages=MESSAGES,
                                             tools=tools) as stream:
        for _ in stream:
            pass
    attrs = traced.span("chat gpt-4o").attributes or {}
    assert attrs["strata.gen_ai.tool_calls"] == ("get_weather",)
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_calls",)


def test_error_response(traced: Traced, oai: openai.OpenAI) -> None:
    """A 429 is re-raised unchanged and recorded as error.type on span and duration metric."""
    with pytest.raises(openai.RateLimitError):
        oai.chat.completions.create(model="error-429", messages=MESSAGES)
    span = traced.span("chat error-429")
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "RateLimitError"
    assert span.events[0].name == "exception"
    (duration,) = traced.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "RateLimitError"


def test_responses_and_embeddings(traced: Traced, oai: openai.OpenAI) -> None:
    """The responses API (plain and streamed) and embeddings are traced with usage."""
    c = oai
    assert c.responses.create(model="resp", input="hi").output_text == srv.TEXT
    for _ in c.responses.create(model="resp-stream", input="hi", stream=True):
        pass
    c.embeddings.create(model="emb", input=["a", "b"])
    for name in ("chat resp", "chat resp-stream"):
        attrs = traced.span(name).attributes or {}
        assert attrs["gen_ai.usage.input_tokens"] == srv.USAGE_INPUT
        assert attrs["gen_ai.usage.reasoning.output_tokens"] == srv.USAGE_REASONING
        assert attrs["gen_ai.response.finish_reasons"] == ("completed",)
    emb = traced.span("embeddings emb").attributes or {}
    assert emb["gen_ai.operation.name"] == "embeddings"
    assert emb["gen_ai.usage.input_tokens"] == srv.EMBED_INPUT
    assert "gen_ai.usage.output_tokens" not in emb


def test_async_chat_and_stream(traced: Traced, llm: LLMServer) -> None:
    """Async create, plain and streamed, is traced like the sync one."""

    async def main() -> str:
        c = aclient(llm)
        await c.chat.completions.create(model="async", messages=MESSAGES)
        stream = await c.chat.completions.create(
            model="async-stream", messages=MESSAGES, stream=True,
            stream_options={"include_usage": True})
        parts = [ch.choices[0].delta.content or "" async for ch in stream if ch.choices]
        await c.close()
        return "".join(parts)

    assert asyncio.run(main()) == srv.TEXT
    assert (traced.span("chat async").attributes or {})["gen_ai.usage.output_tokens"] == 7
    streamed = traced.span("chat async-stream").attributes or {}
    assert streamed["gen_ai.usage.output_tokens"] == srv.USAGE_OUTPUT


def test_content_capture_off_by_default(traced: Traced, oai: openai.OpenAI) -> None:
    """No prompt or response text reaches a span unless capture_content=True."""
    oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user",
                                                                   "content": "secret"}])
    attrs = traced.span("chat gpt-4o").attributes or {}
    assert not any("secret" in str(v) or "Hello" in str(v) for v in attrs.values())
