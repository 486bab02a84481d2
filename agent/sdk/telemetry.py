"""The instrumentation kit: tracer, GenAI histograms, content policy, and one LLM call's span.

Instrumentations reach the active kit through :data:`ACTIVE`; when no ``init()`` is in
force (``ACTIVE.telemetry is None``) every patched method is a plain pass-through.

Everything here is on the hot path of the app's LLM calls: attribute dicts are built
once per call and set in one ``set_attributes`` call, metric attribute dicts are cached,
and no method raises (failures are logged at debug level and dropped).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import Histogram, MeterProvider
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    TracerProvider,
)
from opentelemetry.util.types import AttributeValue
from strata.agent.sdk import attributes as A
from strata.agent.sdk.content import ContentPolicy
from strata.agent.sdk.scope import live_run

logger = logging.getLogger(__name__)

_MAX_CACHED_METRIC_ATTRS = 1024
_SUPPRESS_KEY = otel_context._SUPPRESS_INSTRUMENTATION_KEY
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_UNSET = Status(StatusCode.UNSET)


class FastSpans:
    """Finished LLM spans built directly as ``ReadableSpan`` objects.

    An LLM call's attributes are all known when it finishes, and nothing else writes to
    its span, so a live SDK ``Span`` (locks, per-attribute validation) buys nothing; the
    ids, sampling decision, resource, scope and processors are the SDK tracer's own.
    Processors get ``on_end`` only (fast spans are never "started" in the SDK).
    """

    __slots__ = ("id_generator", "processor", "resource", "sampler", "scope")

    def __init__(self, tracer: Tracer) -> None:
        self.sampler = tracer.sampler  # type: ignore[attr-defined]
        self.id_generator = tracer.id_generator  # type: ignore[attr-defined]
        self.resource = tracer.resource  # type: ignore[attr-defined]
        self.processor = tracer.span_processor  # type: ignore[attr-defined]
        self.scope = tracer._instrumentation_scope  # type: ignore[attr-defined]

    @staticmethod
    def create(tracer: Tracer) -> FastSpans | None:
        """The fast path for *tracer*, or None if the SDK's tracer looks different."""
        try:
            return FastSpans(tracer)
        except AttributeError:
            logger.debug("SDK tracer internals differ; LLM spans use the regular path")
            return None


class Telemetry:
    """What the instrumentations need from one ``init()``.

    Thread-safe: the tracer and histograms are; the metric-attribute cache tolerates
    races (worst case an entry is built twice).
    """

    __slots__ = ("_attr_cache", "_duration", "_token_usage", "_ttfc", "content", "fast", "tracer")

    def __init__(
        self, tracer_provider: TracerProvider, meter_provider: MeterProvider, content: ContentPolicy
    ) -> None:
        from strata.agent import __version__

        self.tracer: Tracer = tracer_provider.get_tracer("strata.sdk", __version__)
        self.fast = FastSpans.create(self.tracer)
        meter = meter_provider.get_meter("strata.sdk", __version__)
        self._token_usage: Histogram = meter.create_histogram(
            A.METRIC_TOKEN_USAGE, unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=A.TOKEN_BUCKETS,
        )
        self._duration: Histogram = meter.create_histogram(
            A.METRIC_DURATION, unit="s", description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=A.DURATION_BUCKETS_S,
        )
        self._ttfc: Histogram = meter.create_histogram(
            A.METRIC_TIME_TO_FIRST_CHUNK, unit="s",
            description="Time to receive the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=A.DURATION_BUCKETS_S,
        )
        self.content = content
        self._attr_cache: dict[tuple[Any, ...], tuple[dict[str, Any], ...]] = {}

    def _metric_attrs(self, key: tuple[Any, ...]) -> tuple[dict[str, Any], ...]:
        cached = self._attr_cache.get(key)
        if cached is not None:
            return cached
        provider, operation, request_model, response_model, error_type = key
        base: dict[str, Any] = {A.PROVIDER: provider, A.OPERATION: operation}
        if request_model is not None:
            base[A.REQUEST_MODEL] = request_model
        if response_model is not None:
            base[A.RESPONSE_MODEL] = response_model
        duration = dict(base)
        if error_type is not None:
            duration[A.ERROR_TYPE] = error_type
        entry = (duration, {**base, A.TOKEN_TYPE: "input"}, {**base, A.TOKEN_TYPE: "output"})
        if len(self._attr_cache) >= _MAX_CACHED_METRIC_ATTRS:
            self._attr_cache.clear()
        self._attr_cache[key] = entry
        return entry

    def record(
        self, key: tuple[Any, ...], duration_s: float, input_tokens: int | None,
        output_tokens: int | None, ttfc_s: float | None = None,
    ) -> None:
        """Record the GenAI client metrics of one finished call (absent counts are skipped)."""
        duration, inp, out = self._metric_attrs(key)
        self._duration.record(duration_s, duration)
        if input_tokens is not None:
            self._token_usage.record(input_tokens, inp)
        if output_tokens is not None:
            self._token_usage.record(output_tokens, out)
        if ttfc_s is not None:
            self._ttfc.record(ttfc_s, duration)


class _Active:
    """Holder of the kit of the current ``init()``; None when the SDK is not initialised."""

    __slots__ = ("telemetry",)

    def __init__(self) -> None:
        self.telemetry: Telemetry | None = None


ACTIVE = _Active()


def suppressed() -> bool:
    """True inside ``suppress_instrumentation`` (e.g. the exporters' own HTTP calls)."""
    return bool(otel_context.get_value(_SUPPRESS_KEY))


class LLMCall:
    """The span and metrics of one LLM request, from ``create()`` to the last chunk.

    ``finish``/``fail`` are idempotent and never raise. When a LangChain LLM run is in
    progress the call fills in that run's span (one span per model call) instead of
    opening a child, and leaves ending it to the LangChain handler. Otherwise the span is
    a :class:`FastSpans` span: while the client method runs, a non-recording span with
    its ids is current (so nested spans parent correctly), and the ``ReadableSpan`` is
    built and handed to the processors when the call finishes.
    """

    __slots__ = (
        "_token", "attrs", "context", "done", "key", "name", "owns_span", "parent", "span",
        "start", "start_ns", "tel",
    )

    def __init__(
        self, tel: Telemetry, name: str, attrs: dict[str, AttributeValue],
        provider: str, operation: str, request_model: str | None,
    ) -> None:
        self.tel = tel
        self.key = (provider, operation, request_model, None, None)
        self.done = False
        self.name = name
        self.attrs = attrs
        self.span: Span | None = None
        self.context: SpanContext | None = None
        self.parent: SpanContext | None = None
        self._token: object | None = None
        self.owns_span = True
        run = live_run()
        fast = tel.fast
        if run is not None and run.is_llm and not run.enriched:
            run.enriched = True
            self.owns_span = False
            self.span = run.span
            self.span.set_attributes(attrs)
        elif fast is None:
            self.span = tel.tracer.start_span(
                name, context=run.context if run is not None else None,
                kind=SpanKind.CLIENT, attributes=attrs,
            )
            self._token = otel_context.attach(trace.set_span_in_context(self.span))
        else:
            self._start_fast(fast, run.context if run is not None else None)
        self.start_ns = time.time_ns()
        self.start = time.perf_counter()

    def _start_fast(self, fast: FastSpans, parent_ctx: otel_context.Context | None) -> None:
        parent = trace.get_current_span(parent_ctx).get_span_context()
        if parent.is_valid:
            trace_id = parent.trace_id
            self.parent = parent
        else:
            trace_id = fast.id_generator.generate_trace_id()
        result = fast.sampler.should_sample(
            parent_ctx, trace_id, self.name, SpanKind.CLIENT, self.attrs
        )
        sampled = result.decision.is_sampled()
        ctx = SpanContext(
            trace_id, fast.id_generator.generate_span_id(), is_remote=False,
            trace_flags=_SAMPLED if sampled else _NOT_SAMPLED, trace_state=result.trace_state,
        )
        if result.decision.is_recording():
            self.context = ctx
        self._token = otel_context.attach(
            trace.set_span_in_context(NonRecordingSpan(ctx), parent_ctx)
        )

    def detach(self) -> None:
        """Make the caller's context current again (after the client method returned)."""
        token = self._token
        if token is not None:
            self._token = None
            otel_context.detach(token)  # type: ignore[arg-type]

    def _emit(self, status: Status, events: tuple[Event, ...] = ()) -> None:
        span = self.span
        if span is not None:
            if self.owns_span:
                span.end()
            return
        fast = self.tel.fast
        if self.context is None or fast is None:
            return  # not sampled
        fast.processor.on_end(ReadableSpan(
            name=self.name, context=self.context, parent=self.parent, resource=fast.resource,
            attributes=self.attrs, events=events, kind=SpanKind.CLIENT, status=status,
            start_time=self.start_ns, end_time=time.time_ns(), instrumentation_scope=fast.scope,
        ))

    def finish(
        self, attrs: Mapping[str, AttributeValue], response_model: str | None,
        input_tokens: int | None, output_tokens: int | None, ttfc_s: float | None = None,
    ) -> None:
        """Set the response attributes, record the metrics and end the span."""
        if self.done:
            return
        self.done = True
        try:
            duration = time.perf_counter() - self.start
            if attrs:
                if self.span is not None:
                    self.span.set_attributes(attrs)
                else:
                    self.attrs.update(attrs)
            provider, operation, request_model, _, _ = self.key
            self.tel.record(
                (provider, operation, request_model, response_model, None),
                duration, input_tokens, output_tokens, ttfc_s,
            )
            self._emit(_UNSET)
        except Exception:
            logger.debug("finishing an LLM span failed", exc_info=True)

    def fail(self, exc: BaseException) -> None:
        """Record *exc* (error.type, status, exception event), the duration, and end."""
        if self.done:
            return
        self.done = True
        try:
            duration = time.perf_counter() - self.start
            error_type = type(exc).__qualname__
            status = Status(StatusCode.ERROR, f"{error_type}: {exc}")
            span = self.span
            events: tuple[Event, ...] = ()
            if span is not None:
                span.set_attribute(A.ERROR_TYPE, error_type)
                span.record_exception(exc)
                span.set_status(status)
            else:
                self.attrs[A.ERROR_TYPE] = error_type
                events = (_exception_event(exc),)
            provider, operation, request_model, _, _ = self.key
            self.tel.record(
                (provider, operation, request_model, None, error_type), duration, None, None
            )
            self._emit(status, events)
        except Exception:
            logger.debug("recording an LLM error failed", exc_info=True)


Factory = Callable[[Callable[..., Any]], Callable[..., Any]]
StartCall = Callable[[Telemetry, Any, Mapping[str, Any]], "LLMCall | None"]
CompleteCall = Callable[["LLMCall", Any, Mapping[str, Any], bool], None]


def call_wrappers(start: StartCall, complete: CompleteCall) -> tuple[Factory, Factory]:
    """Sync and async wrapper factories for a client method, shared by every provider.

    The wrapper calls the original untouched when the SDK is off or suppressed, or when
    *start* (which never raises) declines; an exception from the original is recorded on
    the call and re-raised unchanged; the return value is always the original's.
    """

    def sync_factory(original: Callable[..., Any]) -> Callable[..., Any]:
        def create(self: Any, *args: Any, **kwargs: Any) -> Any:
            tel = ACTIVE.telemetry
            if tel is None or suppressed():
                return original(self, *args, **kwargs)
            call = start(tel, self, kwargs)
            if call is None:
                return original(self, *args, **kwargs)
            try:
                result = original(self, *args, **kwargs)
            except BaseException as exc:
                call.detach()
                call.fail(exc)
                raise
            call.detach()
            complete(call, result, kwargs, False)
            return result

        return create

    def async_factory(original: Callable[..., Any]) -> Callable[..., Any]:
        async def create(self: Any, *args: Any, **kwargs: Any) -> Any:
            tel = ACTIVE.telemetry
            if tel is None or suppressed():
                return await original(self, *args, **kwargs)
            call = start(tel, self, kwargs)
            if call is None:
                return await original(self, *args, **kwargs)
            try:
                result = await original(self, *args, **kwargs)
            except BaseException as exc:
                call.detach()
                call.fail(exc)
                raise
            call.detach()
            complete(call, result, kwargs, True)
            return result

        return create

    return sync_factory, async_factory


def _exception_event(exc: BaseException) -> Event:
    return Event("exception", {
        "exception.type": type(exc).__qualname__,
        "exception.message": str(exc),
        "exception.stacktrace": "".join(
            traceback.format_exception(type(exc), exc, exc.__traceback__)
        ),
        "exception.escaped": "False",
    })
