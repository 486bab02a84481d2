"""Strata SDK: OpenTelemetry GenAI spans and metrics from an LLM app, shipped over OTLP/HTTP.

Usage::

    from strata.agent.sdk import init, workflow, task, step
    init(service="rag-api", team="search")

``init`` is idempotent: a second call while initialised returns the same handle. After
``shutdown()`` a new ``init()`` builds a fresh pipeline (tests use this). Importing this
package imports only the OpenTelemetry API/SDK, never duckdb, fastapi or scikit-learn, and
patches nothing until ``init()``.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from strata.agent.sdk.content import ContentPolicy, Redactor
from strata.agent.sdk.decorators import step, task, workflow
from strata.agent.sdk.setup import Pipeline, SDKSettings, build_pipeline, sdk_disabled
from strata.agent.sdk.telemetry import ACTIVE, Telemetry

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["SDKHandle", "init", "shutdown", "step", "task", "workflow"]

logger = logging.getLogger(__name__)

DEFAULT_INSTRUMENT = ("openai", "anthropic", "langchain")


@dataclass(slots=True)
class SDKHandle:
    """What ``init()`` set up; returned by every ``init()`` while it is in force."""

    settings: SDKSettings
    pipeline: Pipeline
    telemetry: Telemetry
    instrumented: tuple[str, ...]

    @property
    def spans_dropped(self) -> int:
        """Spans dropped because the export queue was full (agent down or too slow)."""
        return self.pipeline.processor.dropped

    def force_flush(self, timeout_s: float = 5.0) -> bool:
        """Export everything queued now; blocks up to *timeout_s*."""
        millis = int(timeout_s * 1000)
        spans = self.pipeline.tracer_provider.force_flush(millis)
        metrics = self.pipeline.meter_provider.force_flush(millis)
        return bool(spans and metrics)


_lock = threading.Lock()
_handle: SDKHandle | None = None
_atexit_registered = False
_global_set = False


def init(
    service: str,
    *,
    endpoint: str | None = None,
    version: str | None = None,
    team: str | None = None,
    environment: str | None = None,
    capture_content: bool = False,
    max_content_chars: int = 4096,
    redact: Redactor | None = None,
    instrument: Iterable[str] = DEFAULT_INSTRUMENT,
    sample_ratio: float | None = None,
    resource_attributes: Mapping[str, str] | None = None,
    set_global: bool = True,
    span_exporter: SpanExporter | None = None,
    metric_reader: MetricReader | None = None,
) -> SDKHandle | None:
    """Start tracing this process's LLM calls and ship them over OTLP/HTTP.

    Args:
        service: ``service.name`` of the app.
        endpoint: OTLP/HTTP base URL (``/v1/traces`` and ``/v1/metrics`` are appended);
            default ``OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]ENDPOINT``, else
            ``http://127.0.0.1:4318`` (the Strata sidecar).
        version: ``service.version`` (deployments are detected from its changes).
        team: resource attribute ``team``, for cost attribution.
        environment: ``deployment.environment.name``.
        capture_content: put prompts/responses on spans (off by default).
        max_content_chars: truncation of each captured text.
        redact: hook applied to each captured text before it is truncated.
        instrument: which libraries to patch: ``openai``, ``anthropic``, ``langchain``.
        sample_ratio: head sampling ratio (parent-based); default ``OTEL_TRACES_SAMPLER``
            or always-on.
        resource_attributes: extra resource attributes.
        set_global: register the providers as the OTel globals if none are set yet, so
            other OTel instrumentations share this pipeline (possible once per process).
        span_exporter: test seam: replaces the OTLP/HTTP span exporter.
        metric_reader: test seam: replaces the periodic OTLP/HTTP metric reader.

    Returns:
        The handle, or None when ``OTEL_SDK_DISABLED=true``.

    Raises:
        ValueError: *sample_ratio* outside 0..1.
    """
    global _handle, _atexit_registered
    with _lock:
        if _handle is not None:
            if _handle.settings.service != service:
                logger.warning("init() called again for service %s while %s is initialised; "
                               "keeping the first", service, _handle.settings.service)
            return _handle
        if sdk_disabled():
            return None
        settings = SDKSettings(
            service=service, version=version, environment=environment, team=team,
            endpoint=endpoint, sample_ratio=sample_ratio,
            resource_attributes=dict(resource_attributes or {}),
        )
        pipeline = build_pipeline(
            settings, span_exporter=span_exporter, metric_reader=metric_reader
        )
        content = ContentPolicy(capture=capture_content, max_chars=max_content_chars,
                                redact=redact)
        telemetry = Telemetry(pipeline.tracer_provider, pipeline.meter_provider, content)
        ACTIVE.telemetry = telemetry
        done = _instrument(tuple(instrument))
        if set_global:
            _set_global(pipeline)
        _handle = SDKHandle(settings, pipeline, telemetry, done)
        if not _atexit_registered:
            atexit.register(shutdown)
            _atexit_registered = True
        return _handle


def shutdown(timeout_s: float = 5.0) -> None:
    """Flush and stop the pipeline and restore the patched methods. Safe to call twice.

    Blocks up to about *timeout_s* while the last spans and metrics are exported; an
    unreachable endpoint does not make it wait longer.
    """
    global _handle
    with _lock:
        handle, _handle = _handle, None
        ACTIVE.telemetry = None
        if handle is None:
            return
        _uninstrument(handle.instrumented)
    handle.pipeline.shutdown(timeout_s)


def _instrument(names: tuple[str, ...]) -> tuple[str, ...]:
    done = []
    for name in names:
        module = _INSTRUMENTORS.get(name)
        if module is None:
            logger.warning("unknown instrumentation %r; known: %s", name,
                           ", ".join(sorted(_INSTRUMENTORS)))
            continue
        try:
            ok = module().instrument()
        except ImportError:
            logger.debug("%s is not installed; not instrumented", name)
            continue
        except Exception:
            logger.warning("instrumenting %s failed", name, exc_info=True)
            continue
        if ok:
            done.append(name)
    return tuple(done)


def _uninstrument(names: tuple[str, ...]) -> None:
    for name in names:
        try:
            _INSTRUMENTORS[name]().uninstrument()
        except Exception:
            logger.warning("uninstrumenting %s failed", name, exc_info=True)


def _set_global(pipeline: Pipeline) -> None:
    global _global_set
    if _global_set:
        return
    from opentelemetry import metrics, trace

    if type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider":
        trace.set_tracer_provider(pipeline.tracer_provider)
    if type(metrics.get_meter_provider()).__name__ == "_ProxyMeterProvider":
        metrics.set_meter_provider(pipeline.meter_provider)
    _global_set = True


def _openai() -> _Instrumentor:
    from strata.agent.sdk import openai_instr

    return openai_instr


def _anthropic() -> _Instrumentor:
    from strata.agent.sdk import anthropic_instr

    return anthropic_instr


def _langchain() -> _Instrumentor:
    from strata.agent.sdk import langchain_instr

    return langchain_instr


if TYPE_CHECKING:
    from typing import Protocol

    class _Instrumentor(Protocol):
        def instrument(self) -> bool: ...
        def uninstrument(self) -> None: ...
else:
    _Instrumentor = object

_INSTRUMENTORS = {"openai": _openai, "anthropic": _anthropic, "langchain": _langchain}
