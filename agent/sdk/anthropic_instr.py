"""Anthropic client instrumentation: ``messages.create`` (sync/async, streamed or not) and
``messages.stream()``.

``gen_ai.usage.input_tokens`` is the total input, as the GenAI conventions ask: Anthropic
reports cache reads and cache writes apart from ``input_tokens``, so they are added in
(and also reported in ``gen_ai.usage.cache_read.input_tokens`` /
``gen_ai.usage.cache_creation.input_tokens``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue
from strata.agent.sdk import attributes as A
from strata.agent.sdk.content import ContentPolicy
from strata.agent.sdk.patching import unwrap, wrap
from strata.agent.sdk.streams import observe
from strata.agent.sdk.telemetry import ACTIVE, LLMCall, Telemetry, call_wrappers

logger = logging.getLogger(__name__)

PROVIDER = "anthropic"
_RAW_HEADER = "X-Stainless-Raw-Response"
_PARAMS = (
    ("max_tokens", A.REQUEST_MAX_TOKENS), ("temperature", A.REQUEST_TEMPERATURE),
    ("top_p", A.REQUEST_TOP_P), ("top_k", A.REQUEST_TOP_K),
)
_SCALARS = (int, float, str, bool)


def _start(
    tel: Telemetry, resource: Any, kwargs: Mapping[str, Any], stream: bool
) -> LLMCall | None:
    try:
        model = kwargs.get("model")
        model = model if isinstance(model, str) else None
        attrs: dict[str, AttributeValue] = {A.OPERATION: A.OP_CHAT, A.PROVIDER: PROVIDER}
        if model is not None:
            attrs[A.REQUEST_MODEL] = model
        url = resource._client.base_url
        if url.host:
            attrs[A.SERVER_ADDRESS] = url.host
            attrs[A.SERVER_PORT] = url.port or (443 if url.scheme == "https" else 80)
        for key, name in _PARAMS:
            value = kwargs.get(key)
            if value is not None and isinstance(value, _SCALARS):
                attrs[name] = value
        stops = kwargs.get("stop_sequences")
        if isinstance(stops, list | tuple):
            attrs[A.REQUEST_STOP] = tuple(str(s) for s in stops)
        if stream:
            attrs[A.REQUEST_STREAM] = True
        content = tel.content
        if content.capture:
            captured = content.messages(kwargs.get("messages"))
            if captured is not None:
                attrs[A.INPUT_MESSAGES] = captured
            system = kwargs.get("system")
            system_text = content.text(system if isinstance(system, str) else None)
            if system_text is not None:
                attrs[A.SYSTEM_INSTRUCTIONS] = system_text
        name = f"{A.OP_CHAT} {model}" if model else A.OP_CHAT
        return LLMCall(tel, name, attrs, PROVIDER, A.OP_CHAT, model)
    except Exception:
        logger.debug("starting an Anthropic span failed", exc_info=True)
        return None


def _usage(usage: Any, attrs: dict[str, AttributeValue]) -> tuple[int | None, int | None]:
    if usage is None:
        return None, None
    inp = usage.input_tokens
    out = usage.output_tokens
    cache_read = usage.cache_read_input_tokens
    cache_write = usage.cache_creation_input_tokens
    if inp is not None:
        inp = inp + (cache_read or 0) + (cache_write or 0)
        attrs[A.INPUT_TOKENS] = inp
    if out is not None:
        attrs[A.OUTPUT_TOKENS] = out
    if cache_read is not None:
        attrs[A.CACHE_READ_TOKENS] = cache_read
    if cache_write is not None:
        attrs[A.CACHE_CREATION_TOKENS] = cache_write
    return inp, out


def _message_summary(
    msg: Any, content: ContentPolicy
) -> tuple[dict[str, AttributeValue], str | None, int | None, int | None]:
    model = msg.model
    attrs: dict[str, AttributeValue] = {A.RESPONSE_MODEL: model, A.RESPONSE_ID: msg.id}
    if msg.stop_reason:
        attrs[A.FINISH_REASONS] = (msg.stop_reason,)
    tools = [block.name for block in msg.content or () if block.type == "tool_use"]
    if tools:
        attrs[A.TOOL_CALL_NAMES] = tuple(tools)
    inp, out = _usage(msg.usage, attrs)
    if content.capture:
        text = "".join(getattr(b, "text", "") for b in msg.content or () if b.type == "text")
        captured = content.output_text(text, msg.stop_reason)
        if captured is not None:
            attrs[A.OUTPUT_MESSAGES] = captured
    return attrs, model, inp, out


class _MessageStream:
    """Accumulates raw stream events: message_start, deltas, message_delta usage."""

    __slots__ = ("content", "id", "input", "model", "output", "parts", "reason", "tools")

    def __init__(self, content: ContentPolicy) -> None:
        self.content = content
        self.model: str | None = None
        self.id: str | None = None
        self.input: Any = None
        self.output: int | None = None
        self.reason: str | None = None
        self.tools: list[str] = []
        self.parts: list[str] | None = [] if content.capture else None

    def on_item(self, item: Any) -> None:
        kind = item.type
        if kind == "content_block_delta":
            if self.parts is not None:
                text = getattr(item.delta, "text", None)
                if text:
                    self.parts.append(text)
        elif kind == "message_start":
            message = item.message
            self.model = message.model
            self.id = message.id
            self.input = message.usage
            self.output = message.usage.output_tokens
        elif kind == "message_delta":
            self.reason = item.delta.stop_reason or self.reason
            if item.usage is not None and item.usage.output_tokens is not None:
                self.output = item.usage.output_tokens
        elif kind == "content_block_start":
            block = item.content_block
            if block.type == "tool_use":
                self.tools.append(block.name)

    def result(self) -> tuple[dict[str, AttributeValue], str | None, int | None, int | None]:
        attrs: dict[str, AttributeValue] = {}
        if self.model is not None:
            attrs[A.RESPONSE_MODEL] = self.model
        if self.id is not None:
            attrs[A.RESPONSE_ID] = self.id
        if self.reason is not None:
            attrs[A.FINISH_REASONS] = (self.reason,)
        if self.tools:
            attrs[A.TOOL_CALL_NAMES] = tuple(self.tools)
        inp, _ = _usage(self.input, {}) if self.input is not None else (None, None)
        if self.input is not None:
            _usage(self.input, attrs)
        out = self.output
        if out is not None:
            attrs[A.OUTPUT_TOKENS] = out
        if self.parts is not None:
            captured = self.content.output_text("".join(self.parts), self.reason)
            if captured is not None:
                attrs[A.OUTPUT_MESSAGES] = captured
        return attrs, self.model, inp, out


def _complete(call: LLMCall, result: Any, kwargs: Mapping[str, Any], is_async: bool) -> None:
    try:
        headers = kwargs.get("extra_headers")
        if headers and _RAW_HEADER in headers:
            call.finish({}, None, None, None)
        elif kwargs.get("stream") is True:
            if not observe(result, call, _MessageStream(call.tel.content), is_async=is_async):
                call.finish({}, None, None, None)
        else:
            attrs, model, inp, out = _message_summary(result, call.tel.content)
            call.finish(attrs, model, inp, out)
    except Exception:
        logger.debug("reading an Anthropic response failed", exc_info=True)
        call.finish({}, None, None, None)


_sync_create, _async_create = call_wrappers(
    lambda tel, client, kwargs: _start(tel, client, kwargs, kwargs.get("stream") is True),
    _complete,
)


_MANAGER_REQUEST = {"MessageStreamManager": "_MessageStreamManager__api_request",
                    "AsyncMessageStreamManager": "_AsyncMessageStreamManager__api_request"}


def _stream_factory(is_async: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrap ``messages.stream()``: the request runs when the returned manager is entered,
    so the manager's request callable is wrapped, not the call itself."""

    def factory(original: Callable[..., Any]) -> Callable[..., Any]:
        def stream(self: Any, *args: Any, **kwargs: Any) -> Any:
            manager = original(self, *args, **kwargs)
            if ACTIVE.telemetry is None:
                return manager
            try:
                attr = _MANAGER_REQUEST.get(type(manager).__name__)
                request = getattr(manager, attr, None) if attr else None
                if attr is not None and request is not None:
                    setattr(manager, attr, _traced_request(self, request, kwargs, is_async))
            except Exception:
                logger.debug("wrapping messages.stream failed", exc_info=True)
            return manager

        return stream

    return factory


def _traced_request(
    resource: Any, request: Any, kwargs: Mapping[str, Any], is_async: bool
) -> Any:
    """The sync manager holds a request callable, the async one an awaitable."""
    stream_kwargs = {**kwargs, "stream": True}
    if is_async:
        async def arequest() -> Any:
            tel = ACTIVE.telemetry
            call = _start(tel, resource, stream_kwargs, True) if tel is not None else None
            if call is None:
                return await request
            try:
                result = await request
            except BaseException as exc:
                call.detach()
                call.fail(exc)
                raise
            call.detach()
            _complete(call, result, stream_kwargs, True)
            return result

        return arequest()

    def srequest() -> Any:
        tel = ACTIVE.telemetry
        call = _start(tel, resource, stream_kwargs, True) if tel is not None else None
        if call is None:
            return request()
        try:
            result = request()
        except BaseException as exc:
            call.detach()
            call.fail(exc)
            raise
        call.detach()
        _complete(call, result, stream_kwargs, False)
        return result

    return srequest


def _targets() -> list[tuple[type, str, Callable[[Any], Callable[..., Any]]]]:
    from anthropic.resources.messages import AsyncMessages, Messages

    return [
        (Messages, "create", _sync_create), (AsyncMessages, "create", _async_create),
        (Messages, "stream", _stream_factory(False)),
        (AsyncMessages, "stream", _stream_factory(True)),
    ]


def instrument() -> bool:
    """Patch the Anthropic messages resource (idempotent). False if not installed."""
    try:
        targets = _targets()
    except ImportError:
        return False
    for cls, name, factory in targets:
        wrap(cls, name, factory)
    return True


def uninstrument() -> None:
    """Restore the original methods."""
    try:
        targets = _targets()
    except ImportError:
        return
    for cls, name, _ in targets:
        unwrap(cls, name)
