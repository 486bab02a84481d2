"""Observe a provider's stream object in place, so the app gets back the very same object.

The OpenAI and Anthropic ``Stream``/``AsyncStream`` classes iterate ``self._iterator``
and close through ``self.close()``. :func:`observe` replaces the instance's
``_iterator`` with an observer and shadows ``close`` on the instance, so the span ends
when the stream is exhausted, fails, is closed, or is garbage-collected (the observer's
``__del__``). The observer never references the stream strongly (no reference cycle, so
a dropped stream is finalised at once by reference counting).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Protocol

from opentelemetry.util.types import AttributeValue
from strata.agent.sdk.attributes import TIME_TO_FIRST_CHUNK
from strata.agent.sdk.telemetry import LLMCall

logger = logging.getLogger(__name__)


class Accumulator(Protocol):
    """Collects what a provider's chunks say about the response."""

    def on_item(self, item: Any) -> None:
        """Look at one chunk/event (called on the app's thread; must be cheap)."""

    def result(
        self,
    ) -> tuple[dict[str, AttributeValue], str | None, int | None, int | None]:
        """(span attributes, response model, input tokens, output tokens) so far."""


class _Observer:
    __slots__ = ("__weakref__", "_acc", "_call", "_first")

    def __init__(self, call: LLMCall, acc: Accumulator) -> None:
        self._call = call
        self._acc = acc
        self._first = 0.0

    def _item(self, item: Any) -> None:
        if not self._first:
            self._first = time.perf_counter()
        try:
            self._acc.on_item(item)
        except Exception:
            logger.debug("stream chunk inspection failed", exc_info=True)

    def end(self, exc: BaseException | None = None) -> None:
        """Finish the span with what was seen so far (or record *exc*). Idempotent."""
        call = self._call
        if call.done:
            return
        if exc is not None and not isinstance(exc, GeneratorExit):
            call.fail(exc)
            return
        try:
            attrs, model, inp, out = self._acc.result()
            ttfc = None
            if self._first:
                ttfc = self._first - call.start
                attrs[TIME_TO_FIRST_CHUNK] = ttfc
        except Exception:
            logger.debug("stream summary failed", exc_info=True)
            attrs, model, inp, out, ttfc = {}, None, None, None, None
        call.finish(attrs, model, inp, out, ttfc)

    def __del__(self) -> None:
        self.end()


class SyncStreamObserver(_Observer):
    """Wraps the stream's sync iterator."""

    __slots__ = ("_it",)

    def __init__(self, it: Iterator[Any], call: LLMCall, acc: Accumulator) -> None:
        super().__init__(call, acc)
        self._it = it

    def __iter__(self) -> SyncStreamObserver:
        return self

    def __next__(self) -> Any:
        try:
            item = self._it.__next__()
        except StopIteration:
            self.end()
            raise
        except BaseException as exc:
            self.end(exc)
            raise
        self._item(item)
        return item


class AsyncStreamObserver(_Observer):
    """Wraps the stream's async iterator."""

    __slots__ = ("_it",)

    def __init__(self, it: AsyncIterator[Any], call: LLMCall, acc: Accumulator) -> None:
        super().__init__(call, acc)
        self._it = it

    def __aiter__(self) -> AsyncStreamObserver:
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self._it.__anext__()
        except StopAsyncIteration:
            self.end()
            raise
        except BaseException as exc:
            self.end(exc)
            raise
        self._item(item)
        return item


def observe(stream: Any, call: LLMCall, acc: Accumulator, *, is_async: bool) -> bool:
    """Hook *call*'s span onto *stream* in place; False if the object is not a known stream.

    The stream's class must iterate ``self._iterator`` and offer ``close()``.
    """
    original_close = getattr(type(stream), "close", None)
    inner = getattr(stream, "_iterator", None)
    if original_close is None or inner is None:
        return False
    ref = weakref.ref(stream)
    observer: _Observer
    if is_async:
        observer = AsyncStreamObserver(inner, call, acc)

        async def aclose() -> None:
            observer.end()
            target = ref()
            if target is not None:
                await original_close(target)

        closer: Callable[[], Awaitable[None]] | Callable[[], None] = aclose
    else:
        observer = SyncStreamObserver(inner, call, acc)

        def close() -> None:
            observer.end()
            target = ref()
            if target is not None:
                original_close(target)

        closer = close
    stream._iterator = observer
    stream.close = closer
    return True

