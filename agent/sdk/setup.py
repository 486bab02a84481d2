"""Providers, exporters and resource for the SDK: one :class:`Pipeline` per ``init()``.

The pipeline owns its own ``TracerProvider`` and ``MeterProvider`` instances. Our
instrumentation always uses these instances, never the global ones, so ``shutdown()``
followed by a new ``init()`` works in one process (tests rely on it). The global OTel
providers can be set only once per process; ``init(set_global=True)`` registers the first
pipeline there so other OpenTelemetry instrumentations share it.

Settings resolve argument > standard ``OTEL_*`` variable > default: the OTLP exporters
read ``OTEL_EXPORTER_OTLP_*`` themselves when no endpoint argument is given, the batch
processor reads ``OTEL_BSP_*``, the sampler ``OTEL_TRACES_SAMPLER[_ARG]`` and the
resource ``OTEL_SERVICE_NAME``/``OTEL_RESOURCE_ATTRIBUTES`` (explicit arguments win).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased
from strata.agent.sdk.attributes import TEAM

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
ENV_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
ENV_METRICS_ENDPOINT = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
ENV_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
ENV_SDK_DISABLED = "OTEL_SDK_DISABLED"
SCOPE_NAME = "strata.sdk"


@dataclass(frozen=True, slots=True)
class SDKSettings:
    """What ``init()`` was asked for, after argument/env resolution."""

    service: str
    version: str | None = None
    environment: str | None = None
    team: str | None = None
    endpoint: str | None = None
    sample_ratio: float | None = None
    resource_attributes: Mapping[str, str] = field(default_factory=dict)


def build_resource(settings: SDKSettings) -> Resource:
    """Resource with service.name/version, deployment.environment.name and ``team``.

    Arguments override ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``.
    """
    attrs: dict[str, str] = {"service.name": settings.service, **settings.resource_attributes}
    if settings.version is not None:
        attrs["service.version"] = settings.version
    if settings.environment is not None:
        attrs["deployment.environment.name"] = settings.environment
    if settings.team is not None:
        attrs[TEAM] = settings.team
    return Resource.create(attrs)


def _signal_url(endpoint: str | None, signal_env: str, path: str) -> str | None:
    """Full OTLP/HTTP URL for one signal, or None to let the exporter read the env."""
    if endpoint is not None:
        return endpoint.rstrip("/") + path
    if os.environ.get(signal_env) or os.environ.get(ENV_ENDPOINT):
        return None
    return DEFAULT_ENDPOINT + path


def _sampler(ratio: float | None) -> Sampler | None:
    if ratio is None:
        return None  # TracerProvider reads OTEL_TRACES_SAMPLER, default parentbased_always_on
    if not 0.0 <= ratio <= 1.0:
        msg = f"sample_ratio must be in 0..1, got {ratio!r}"
        raise ValueError(msg)
    return ParentBased(TraceIdRatioBased(ratio))


class DropCountingSpanProcessor(SpanProcessor):
    """A ``BatchSpanProcessor`` that also counts spans dropped because its queue was full.

    The batch processor's queue is bounded (``OTEL_BSP_MAX_QUEUE_SIZE``, default 2048):
    when the exporter cannot keep up (agent down or slow), new spans replace the oldest
    and the app never blocks. ``on_end`` runs on the thread that ends the span; it only
    appends to a deque.
    """

    def __init__(self, exporter: SpanExporter) -> None:
        self._inner = BatchSpanProcessor(exporter)
        inner = getattr(self._inner, "_batch_processor", None)
        self._queue = getattr(inner, "_queue", None)  # a deque(maxlen=...), SDK detail
        self._max = getattr(inner, "_max_queue_size", 0)
        self.dropped = 0

    def on_start(self, span: object, parent_context: object = None) -> None:
        """Nothing to do when a span starts."""

    def on_end(self, span: ReadableSpan) -> None:
        """Queue *span* for export; count it as a drop when the queue is already full."""
        queue = self._queue
        if queue is not None and len(queue) >= self._max:
            self.dropped += 1  # the deque evicts the oldest span
        self._inner.on_end(span)

    def shutdown(self) -> None:
        """Flush and stop the export thread."""
        self._inner.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export everything queued; blocks the caller."""
        return self._inner.force_flush(timeout_millis)


@dataclass(slots=True)
class Pipeline:
    """The providers and processor that one ``init()`` created."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    processor: DropCountingSpanProcessor

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Flush spans and metrics, then stop the export threads.

        Returns after at most about *timeout_s*: an exporter stuck in its retry back-off
        (endpoint down) holds the batch processor's export lock for up to its own
        timeout, so the flush runs on a daemon thread that is abandoned at the deadline.
        """
        millis = int(timeout_s * 1000)

        def run() -> None:
            try:
                self.tracer_provider.force_flush(millis)
                self.tracer_provider.shutdown()
            finally:
                self.meter_provider.shutdown(timeout_millis=millis)

        worker = threading.Thread(target=run, name="strata-sdk-shutdown", daemon=True)
        worker.start()
        worker.join(timeout_s)


def build_pipeline(
    settings: SDKSettings,
    *,
    span_exporter: SpanExporter | None = None,
    metric_reader: MetricReader | None = None,
) -> Pipeline:
    """Create providers, the OTLP/HTTP exporters (or the given test doubles) and processor.

    Args:
        settings: resolved ``init()`` settings.
        span_exporter: replaces the OTLP/HTTP span exporter (tests pass an in-memory one).
        metric_reader: replaces the periodic OTLP/HTTP metric reader.
    """
    resource = build_resource(settings)
    if span_exporter is None:
        from strata.agent.sdk.otlp_encoder import FastOTLPSpanExporter

        span_exporter = FastOTLPSpanExporter(
            endpoint=_signal_url(settings.endpoint, ENV_TRACES_ENDPOINT, "/v1/traces")
        )
    if metric_reader is None:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        metric_reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(
                endpoint=_signal_url(settings.endpoint, ENV_METRICS_ENDPOINT, "/v1/metrics")
            )
        )
    processor = DropCountingSpanProcessor(span_exporter)
    tracer_provider = TracerProvider(
        resource=resource, sampler=_sampler(settings.sample_ratio), shutdown_on_exit=False
    )
    tracer_provider.add_span_processor(processor)
    meter_provider = MeterProvider(
        resource=resource, metric_readers=[metric_reader], shutdown_on_exit=False
    )
    return Pipeline(tracer_provider, meter_provider, processor)


def sdk_disabled() -> bool:
    """True when ``OTEL_SDK_DISABLED`` is set to ``true``."""
    return os.environ.get(ENV_SDK_DISABLED, "").strip().lower() == "true"
