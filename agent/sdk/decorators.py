"""``@workflow``, ``@task`` and ``step()``: orchestration spans for the app's own steps.

Work with plain functions, coroutines, generators and async generators. The span is
current while the body runs (for generators: while each step of the generator runs, not
while the consumer holds a yielded item), so LLM calls inside become its children.
Exceptions are recorded on the span (``error.type``, status ERROR) and re-raised
unchanged; return values and yielded items pass through untouched. Without ``init()``
the decorated function is called directly.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncGenerator, Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue
from strata.agent.sdk import attributes as A
from strata.agent.sdk.scope import parent_context
from strata.agent.sdk.telemetry import ACTIVE

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def _start(operation: str, kind: str, name: str) -> Span | None:
    tel = ACTIVE.telemetry
    if tel is None:
        return None
    try:
        attrs: dict[str, AttributeValue] = {A.OPERATION: operation, A.STEP_KIND: kind}
        if kind == "workflow":
            attrs[A.WORKFLOW_NAME] = name
        return tel.tracer.start_span(
            f"{operation} {name}", context=parent_context(), attributes=attrs
        )
    except Exception:
        logger.debug("starting a step span failed", exc_info=True)
        return None


def record_error(span: Span, exc: BaseException) -> None:
    """Mark *span* failed with *exc* (never raises)."""
    try:
        error_type = type(exc).__qualname__
        span.set_attribute(A.ERROR_TYPE, error_type)
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{error_type}: {exc}"))
    except Exception:
        logger.debug("recording a step error failed", exc_info=True)


def _end(span: Span) -> None:
    try:
        span.end()
    except Exception:
        logger.debug("ending a step span failed", exc_info=True)


def _attach(span: Span) -> object:
    return otel_context.attach(trace.set_span_in_context(span))


def _detach(token: object) -> None:
    otel_context.detach(token)  # type: ignore[arg-type]


def _wrap_function(fn: Callable[..., Any], operation: str, kind: str, name: str) -> Any:
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        span = _start(operation, kind, name)
        if span is None:
            return fn(*args, **kwargs)
        token = _attach(span)
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            record_error(span, exc)
            raise
        finally:
            _detach(token)
            _end(span)

    return call


def _wrap_coroutine(fn: Callable[..., Any], operation: str, kind: str, name: str) -> Any:
    @functools.wraps(fn)
    async def call(*args: Any, **kwargs: Any) -> Any:
        span = _start(operation, kind, name)
        if span is None:
            return await fn(*args, **kwargs)
        token = _attach(span)
        try:
            return await fn(*args, **kwargs)
        except BaseException as exc:
            record_error(span, exc)
            raise
        finally:
            _detach(token)
            _end(span)

    return call


def _wrap_generator(fn: Callable[..., Any], operation: str, kind: str, name: str) -> Any:
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        span = _start(operation, kind, name)
        gen = fn(*args, **kwargs)
        if span is None:
            return (yield from gen)
        try:
            return (yield from _drive(gen, span))
        finally:
            _end(span)

    return call


def _drive(gen: Generator[Any, Any, Any], span: Span) -> Generator[Any, Any, Any]:
    """Run *gen* with *span* current during each of its steps, forwarding send/throw."""
    send: Any = None
    thrown: BaseException | None = None
    while True:
        token = _attach(span)
        try:
            item = gen.throw(thrown) if thrown is not None else gen.send(send)
        except StopIteration as stop:
            return stop.value
        except BaseException as exc:
            record_error(span, exc)
            raise
        finally:
            _detach(token)
        thrown = None
        try:
            send = yield item
        except GeneratorExit:
            gen.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - thrown in by the consumer: forwarded
            thrown = exc


def _wrap_async_generator(fn: Callable[..., Any], operation: str, kind: str, name: str) -> Any:
    @functools.wraps(fn)
    async def call(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        span = _start(operation, kind, name)
        agen = fn(*args, **kwargs)
        if span is None:
            async for item in agen:
                yield item
            return
        try:
            send: Any = None
            while True:
                token = _attach(span)
                try:
                    item = await agen.asend(send)
                except StopAsyncIteration:
                    return
                except BaseException as exc:
                    record_error(span, exc)
                    raise
                finally:
                    _detach(token)
                try:
                    send = yield item
                except GeneratorExit:
                    await agen.aclose()
                    raise
        finally:
            _end(span)

    return call


def _decorate(fn: F, operation: str, kind: str, name: str | None) -> F:
    label = name or getattr(fn, "__qualname__", None) or repr(fn)
    if inspect.isasyncgenfunction(fn):
        wrapped = _wrap_async_generator(fn, operation, kind, label)
    elif inspect.isgeneratorfunction(fn):
        wrapped = _wrap_generator(fn, operation, kind, label)
    elif inspect.iscoroutinefunction(fn):
        wrapped = _wrap_coroutine(fn, operation, kind, label)
    else:
        wrapped = _wrap_function(fn, operation, kind, label)
    return cast(F, wrapped)


@overload
def workflow(fn: F, /) -> F: ...
@overload
def workflow(*, name: str | None = None) -> Callable[[F], F]: ...
def workflow(fn: F | None = None, /, *, name: str | None = None) -> F | Callable[[F], F]:
    """Trace a function as a workflow (``gen_ai.operation.name=invoke_workflow``).

    Usable bare (``@workflow``) or with a name (``@workflow(name="answer")``).
    """
    if fn is not None:
        return _decorate(fn, A.OP_INVOKE_WORKFLOW, "workflow", None)
    return lambda f: _decorate(f, A.OP_INVOKE_WORKFLOW, "workflow", name)


@overload
def task(fn: F, /) -> F: ...
@overload
def task(*, name: str | None = None) -> Callable[[F], F]: ...
def task(fn: F | None = None, /, *, name: str | None = None) -> F | Callable[[F], F]:
    """Trace a function as one task of a workflow (``gen_ai.operation.name=task``)."""
    if fn is not None:
        return _decorate(fn, A.OP_TASK, "task", None)
    return lambda f: _decorate(f, A.OP_TASK, "task", name)


@contextmanager
def step(name: str, *, attributes: dict[str, AttributeValue] | None = None) -> Iterator[Span]:
    """Trace a block as a custom chain step; yields the span (non-recording without init).

    Exceptions from the block are recorded and propagate unchanged.
    """
    span = _start(A.OP_TASK, "step", name)
    if span is None:
        yield trace.INVALID_SPAN
        return
    if attributes:
        try:
            span.set_attributes(attributes)
        except Exception:
            logger.debug("step attributes rejected", exc_info=True)
    token = _attach(span)
    try:
        yield span
    except BaseException as exc:
        record_error(span, exc)
        raise
    finally:
        _detach(token)
        _end(span)
