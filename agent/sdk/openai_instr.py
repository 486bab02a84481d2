"""OpenAI client instrumentation: chat completions, responses and embeddings, sync and async.

Patches the resource classes' ``create`` methods (so every client instance, and the
``.stream()`` helpers that call ``create``, are covered). A streamed call's span stays
open until the stream is exhausted, closed or garbage-collected; the stream object handed
back is the one the client returned. Calls made through ``with_raw_response`` /
``with_streaming_response`` get a span without response attributes (the body is parsed
later, by the app).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue
from strata.agent.sdk import attributes as A
from strata.agent.sdk.content import ContentPolicy
from strata.agent.sdk.patching import unwrap, wrap
from strata.agent.sdk.streams import Accumulator, observe
from strata.agent.sdk.telemetry import LLMCall, Telemetry, call_wrappers

logger = logging.getLogger(__name__)

PROVIDER = "openai"
_RAW_HEADER = "X-Stainless-Raw-Response"

Params = tuple[tuple[str, str], ...]
_CHAT_PARAMS: Params = (
    ("max_tokens", A.REQUEST_MAX_TOKENS), ("max_completion_tokens", A.REQUEST_MAX_TOKENS),
    ("temperature", A.REQUEST_TEMPERATURE), ("top_p", A.REQUEST_TOP_P),
    ("seed", A.REQUEST_SEED), ("n", A.REQUEST_CHOICE_COUNT),
    ("frequency_penalty", A.REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", A.REQUEST_PRESENCE_PENALTY),
)
_RESPONSES_PARAMS: Params = (
    ("max_output_tokens", A.REQUEST_MAX_TOKENS), ("temperature", A.REQUEST_TEMPERATURE),
    ("top_p", A.REQUEST_TOP_P),
)
_EMBEDDINGS_PARAMS: Params = (("dimensions", A.EMBEDDINGS_DIMENSION),)
_SCALARS = (int, float, str, bool)


def _server(resource: Any) -> tuple[str | None, int | None]:
    url = resource._client.base_url
    host = url.host or None
    port = url.port or (443 if url.scheme == "https" else 80)
    return host, port


def _start(
    tel: Telemetry, resource: Any, kwargs: Mapping[str, Any], operation: str, params: Params,
) -> LLMCall | None:
    try:
        model = kwargs.get("model")
        model = model if isinstance(model, str) else None
        attrs: dict[str, AttributeValue] = {A.OPERATION: operation, A.PROVIDER: PROVIDER}
        if model is not None:
            attrs[A.REQUEST_MODEL] = model
        host, port = _server(resource)
        if host is not None:
            attrs[A.SERVER_ADDRESS] = host
            attrs[A.SERVER_PORT] = port
        for key, name in params:
            value = kwargs.get(key)
            if value is not None and isinstance(value, _SCALARS):
                attrs[name] = value
        if kwargs.get("stream") is True:
            attrs[A.REQUEST_STREAM] = True
        stop = kwargs.get("stop")
        if stop is not None and isinstance(stop, str | list | tuple):
            stops = (stop,) if isinstance(stop, str) else tuple(str(s) for s in stop)
            attrs[A.REQUEST_STOP] = stops
        if operation == A.OP_EMBEDDINGS:
            fmt = kwargs.get("encoding_format")
            if isinstance(fmt, str):
                attrs[A.REQUEST_ENCODING_FORMATS] = (fmt,)
        content = tel.content
        if content.capture:
            _capture_input(content, kwargs, attrs)
        name = f"{operation} {model}" if model else operation
        return LLMCall(tel, name, attrs, PROVIDER, operation, model)
    except Exception:
        logger.debug("starting an OpenAI span failed", exc_info=True)
        return None


def _capture_input(
    content: ContentPolicy, kwargs: Mapping[str, Any], attrs: dict[str, AttributeValue]
) -> None:
    messages = kwargs.get("messages", kwargs.get("input"))
    captured = content.messages(messages)
    if captured is not None:
        attrs[A.INPUT_MESSAGES] = captured
    instructions = content.text(kwargs.get("instructions"))
    if instructions is not None:
        attrs[A.SYSTEM_INSTRUCTIONS] = instructions


def _usage_attrs(
    attrs: dict[str, AttributeValue], inp: int | None, out: int | None,
    cached: int | None, reasoning: int | None,
) -> None:
    if inp is not None:
        attrs[A.INPUT_TOKENS] = inp
    if out is not None:
        attrs[A.OUTPUT_TOKENS] = out
    if cached is not None:
        attrs[A.CACHE_READ_TOKENS] = cached
    if reasoning is not None:
        attrs[A.REASONING_TOKENS] = reasoning


def _chat_usage(usage: Any, attrs: dict[str, AttributeValue]) -> tuple[int | None, int | None]:
    if usage is None:
        return None, None
    inp = usage.prompt_tokens
    out = usage.completion_tokens
    details = usage.prompt_tokens_details
    cached = details.cached_tokens if details is not None else None
    details = usage.completion_tokens_details
    reasoning = details.reasoning_tokens if details is not None else None
    _usage_attrs(attrs, inp, out, cached, reasoning)
    return inp, out


def _chat_summary(
    result: Any, content: ContentPolicy
) -> tuple[dict[str, AttributeValue], str | None, int | None, int | None]:
    model = result.model
    attrs: dict[str, AttributeValue] = {A.RESPONSE_MODEL: model, A.RESPONSE_ID: result.id}
    reasons: list[str] = []
    tools: list[str] = []
    for choice in result.choices:
        if choice.finish_reason:
            reasons.append(choice.finish_reason)
        calls = choice.message.tool_calls
        if calls:
            tools.extend(c.function.name for c in calls if getattr(c, "function", None))
    attrs[A.FINISH_REASONS] = tuple(reasons)
    if tools:
        attrs[A.TOOL_CALL_NAMES] = tuple(tools)
    inp, out = _chat_usage(result.usage, attrs)
    if content.capture and result.choices:
        first = result.choices[0]
        text = content.output_text(first.message.content, first.finish_reason)
        if text is not None:
            attrs[A.OUTPUT_MESSAGES] = text
    return attrs, model, inp, out


def _responses_summary(
    result: Any, content: ContentPolicy
) -> tuple[dict[str, AttributeValue], str | None, int | None, int | None]:
    model = result.model
    attrs: dict[str, AttributeValue] = {A.RESPONSE_MODEL: model, A.RESPONSE_ID: result.id}
    status = result.status
    if status == "incomplete" and result.incomplete_details is not None:
        status = result.incomplete_details.reason or status
    if status:
        attrs[A.FINISH_REASONS] = (status,)
    tools = [item.name for item in result.output or () if item.type == "function_call"]
    if tools:
        attrs[A.TOOL_CALL_NAMES] = tuple(tools)
    usage = result.usage
    inp = out = None
    if usage is not None:
        inp, out = usage.input_tokens, usage.output_tokens
        cached = getattr(usage.input_tokens_details, "cached_tokens", None)
        reasoning = getattr(usage.output_tokens_details, "reasoning_tokens", None)
        _usage_attrs(attrs, inp, out, cached, reasoning)
    if content.capture:
        text = content.output_text(result.output_text, status)
        if text is not None:
            attrs[A.OUTPUT_MESSAGES] = text
    return attrs, model, inp, out


def _embeddings_summary(
    result: Any, content: ContentPolicy
) -> tuple[dict[str, AttributeValue], str | None, int | None, int | None]:
    model = result.model
    attrs: dict[str, AttributeValue] = {A.RESPONSE_MODEL: model}
    inp = getattr(result.usage, "prompt_tokens", None)
    if inp is not None:
        attrs[A.INPUT_TOKENS] = inp
    if result.data:
        attrs[A.EMBEDDINGS_DIMENSION] = len(result.data[0].embedding)
    return attrs, model, inp, None


class _ChatStream:
    """Accumulates chat-completion chunks: model, id, finish reasons, tool calls, usage."""

    __slots__ = ("content", "id", "model", "parts", "reasons", "tools", "usage")

    def __init__(self, content: ContentPolicy) -> None:
        self.content = content
        self.model: str | None = None
        self.id: str | None = None
        self.reasons: list[str] = []
        self.tools: list[str] = []
        self.usage: Any = None
        self.parts: list[str] | None = [] if content.capture else None

    def on_item(self, item: Any) -> None:
        if self.model is None:
            self.model = item.model
            self.id = item.id
        for choice in item.choices:
            if choice.finish_reason:
                self.reasons.append(choice.finish_reason)
            delta = choice.delta
            if delta is None:
                continue
            if delta.tool_calls:
                self.tools.extend(
                    c.function.name for c in delta.tool_calls if c.function and c.function.name
                )
            if self.parts is not None and delta.content and choice.index == 0:
                self.parts.append(delta.content)
        if item.usage is not None:
            self.usage = item.usage

    def result(self) -> tuple[dict[str, AttributeValue], str | None, int | None, int | None]:
        attrs: dict[str, AttributeValue] = {}
        if self.reasons:
            attrs[A.FINISH_REASONS] = tuple(self.reasons)
        if self.model is not None:
            attrs[A.RESPONSE_MODEL] = self.model
        if self.id is not None:
            attrs[A.RESPONSE_ID] = self.id
        if self.tools:
            attrs[A.TOOL_CALL_NAMES] = tuple(self.tools)
        inp, out = _chat_usage(self.usage, attrs)
        if self.parts is not None:
            reason = self.reasons[0] if self.reasons else None
            text = self.content.output_text("".join(self.parts), reason)
            if text is not None:
                attrs[A.OUTPUT_MESSAGES] = text
        return attrs, self.model, inp, out


class _ResponsesStream:
    """Accumulates Responses API events; the terminal event carries the full response."""

    __slots__ = ("content", "final", "model")

    def __init__(self, content: ContentPolicy) -> None:
        self.content = content
        self.final: Any = None
        self.model: str | None = None

    def on_item(self, item: Any) -> None:
        response = getattr(item, "response", None)
        if response is not None:
            self.final = response

    def result(self) -> tuple[dict[str, AttributeValue], str | None, int | None, int | None]:
        if self.final is None:
            return {}, None, None, None
        return _responses_summary(self.final, self.content)


Summary = Callable[[Any, ContentPolicy], tuple[dict[str, AttributeValue], str | None,
                                               int | None, int | None]]


def _complete(
    call: LLMCall, result: Any, kwargs: Mapping[str, Any], summary: Summary,
    stream_acc: Callable[[ContentPolicy], Accumulator] | None, is_async: bool,
) -> None:
    try:
        headers = kwargs.get("extra_headers")
        if headers and _RAW_HEADER in headers:
            call.finish({}, None, None, None)
        elif stream_acc is not None and kwargs.get("stream") is True:
            if not observe(result, call, stream_acc(call.tel.content), is_async=is_async):
                call.finish({}, None, None, None)
        else:
            attrs, model, inp, out = summary(result, call.tel.content)
            call.finish(attrs, model, inp, out)
    except Exception:
        logger.debug("reading an OpenAI response failed", exc_info=True)
        call.finish({}, None, None, None)


def _factories(
    operation: str, params: Params, summary: Summary,
    stream_acc: Callable[[ContentPolicy], Accumulator] | None,
) -> tuple[Callable[[Any], Callable[..., Any]], Callable[[Any], Callable[..., Any]]]:
    """Sync and async wrapper factories for one OpenAI operation."""
    return call_wrappers(
        lambda tel, client, kwargs: _start(tel, client, kwargs, operation, params),
        lambda call, result, kwargs, is_async: _complete(call, result, kwargs, summary,
                                                         stream_acc, is_async),
    )


def _targets() -> list[tuple[type, Callable[[Any], Callable[..., Any]]]]:
    from openai.resources.chat.completions import AsyncCompletions, Completions
    from openai.resources.embeddings import AsyncEmbeddings, Embeddings
    from openai.resources.responses import AsyncResponses, Responses

    chat = _factories(A.OP_CHAT, _CHAT_PARAMS, _chat_summary, _ChatStream)
    responses = _factories(A.OP_CHAT, _RESPONSES_PARAMS, _responses_summary, _ResponsesStream)
    embed = _factories(A.OP_EMBEDDINGS, _EMBEDDINGS_PARAMS, _embeddings_summary, None)
    return [
        (Completions, chat[0]), (AsyncCompletions, chat[1]),
        (Responses, responses[0]), (AsyncResponses, responses[1]),
        (Embeddings, embed[0]), (AsyncEmbeddings, embed[1]),
    ]


def instrument() -> bool:
    """Patch the OpenAI resource classes (idempotent). False if ``openai`` is not installed."""
    try:
        targets = _targets()
    except ImportError:
        return False
    for cls, factory in targets:
        wrap(cls, "create", factory)
    return True


def uninstrument() -> None:
    """Restore the original methods."""
    try:
        targets = _targets()
    except ImportError:
        return
    for cls, _ in targets:
        unwrap(cls, "create")
