"""Anthropic instrumentation: the real anthropic client against the local wire-format server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import anthropic
import pytest
from opentelemetry.trace import StatusCode

from tests.sdk import llm_server as srv
from tests.sdk.conftest import Traced
from tests.sdk.llm_server import LLMServer

MESSAGES = [{"role": "user", "content": "hi"}]
# Anthropic reports cache reads (3) and writes (1) apart from input_tokens; the span's
# input count is the total, as the GenAI conventions ask.
TOTAL_INPUT = srv.USAGE_INPUT + srv.USAGE_CACHED + 1


@pytest.fixture(name="claude")
def claude_fixture(llm: LLMServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=llm.url, api_key="test", max_retries=0) as c:
        yield c


def test_message_span(traced: Traced, claude: anthropic.Anthropic) -> None:
    """messages.create yields a chat span with usage, cache tokens and the stop reason."""
    msg = claude.messages.create(model="claude", max_tokens=64, messages=MESSAGES)
    assert msg.content[0].text == srv.TEXT  # type: ignore[union-attr]
    attrs = traced.span("chat claude").attributes or {}
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["gen_ai.request.max_tokens"] == 64
    assert attrs["gen_ai.response.model"] == "claude-2024-08-06"
    assert attrs["gen_ai.usage.input_tokens"] == TOTAL_INPUT
    assert attrs["gen_ai.usage.output_tokens"] == srv.USAGE_OUTPUT
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == srv.USAGE_CACHED
    assert attrs["gen_ai.usage.cache_creation.input_tokens"] == 1
    assert attrs["gen_ai.response.finish_reasons"] == ("end_turn",)


def test_stream_true_and_stream_helper(traced: Traced, claude: anthropic.Anthropic) -> None:
    """create(stream=True) and messages.stream() both end their span with the final usage."""
    for _ in claude.messages.create(model="raw", max_tokens=8, messages=MESSAGES, stream=True):
        pass
    with claude.messages.stream(model="helper", max_tokens=8, messages=MESSAGES) as stream:
        assert stream.get_final_text() == srv.TEXT
    for name in ("chat raw", "chat helper"):
        attrs = traced.span(name).attributes or {}
        assert attrs["gen_ai.usage.input_tokens"] == TOTAL_INPUT
        assert attrs["gen_ai.usage.output_tokens"] == srv.USAGE_OUTPUT
        assert attrs["gen_ai.response.finish_reasons"] == ("end_turn",)
        assert attrs["gen_ai.response.time_to_first_chunk"] > 0


def test_async_and_errors(traced: Traced, llm: LLMServer) -> None:
    """Async create and async streams are traced; a 500 is re-raised and recorded."""

    async def main() -> None:
        async with anthropic.AsyncAnthropic(base_url=llm.url, api_key="t", max_retries=0) as c:
            await c.messages.create(model="async", max_tokens=8, messages=MESSAGES)
            async with c.messages.stream(model="astream", max_tokens=8,
                                         messages=MESSAGES) as stream:
                async for _ in stream:
                    pass
            with pytest.raises(anthropic.InternalServerError):
                await c.messages.create(model="error-500", max_tokens=8, messages=MESSAGES)

    asyncio.run(main())
    assert (traced.span("chat async").attributes or {})["gen_ai.usage.output_tokens"] == 7
    assert (traced.span("chat astream").attributes or {})["gen_ai.usage.output_tokens"] == 7
    failed = traced.span("chat error-500")
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "InternalServerError"
