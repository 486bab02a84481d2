"""Records that cross module boundaries.

Every record is a frozen, slotted dataclass whose field names follow the protocol it comes
from (OTLP for spans and samples, DESIGN.md's JSON for incidents), so the API serialises
them without a mapping layer. Times are integers in nanoseconds since the Unix epoch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeAlias

TraceId: TypeAlias = str  # 32 lowercase hex characters
SpanId: TypeAlias = str  # 16 lowercase hex characters
AttributeValue: TypeAlias = str | bool | int | float | list[Any] | dict[str, Any] | None


class Layer(StrEnum):
    """The five layers of a GenAI stack that Strata watches."""

    INFRASTRUCTURE = "infrastructure"
    DATA = "data"
    SERVING = "serving"
    MODEL = "model"
    ORCHESTRATION = "orchestration"


@dataclass(frozen=True, slots=True)
class Sample:
    """One metric point, as received or collected.

    ``name`` is the name as received (``DCGM_FI_DEV_GPU_TEMP``, ``vllm:num_requests_waiting``);
    ``canonical`` the Strata name it maps to (``gpu.temperature``), or None when unknown.
    A sample that could not be read is never created: missing is absent, not zero.
    """

    name: str
    value: float
    unit: str
    layer: Layer
    time_unix_nano: int
    attributes: Mapping[str, str] = field(default_factory=dict)
    canonical: str | None = None
    host: str | None = None
    device: str | None = None  # GPU UUID or index, vector-DB shard, server instance
    service: str | None = None


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One span after normalisation, with the columns Strata queries often promoted.

    Token counts and models are None when the span did not report them (never 0).
    Prompt and response text are not here unless content capture is on.
    """

    trace_id: TraceId
    span_id: SpanId
    parent_span_id: SpanId | None
    name: str
    kind: str
    start_unix_nano: int
    end_unix_nano: int
    status: str  # "unset" | "ok" | "error"
    service: str
    layer: Layer
    service_version: str | None = None
    operation: str | None = None
    provider: str | None = None
    request_model: str | None = None
    response_model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    reasoning_tokens: int | None = None
    error_type: str | None = None
    host: str | None = None
    team: str | None = None
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    resource: Mapping[str, AttributeValue] = field(default_factory=dict)

    @property
    def duration_ns(self) -> int:
        return self.end_unix_nano - self.start_unix_nano

    @property
    def model(self) -> str | None:
        return self.response_model or self.request_model


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One OTLP log record or event after normalisation, linked to its span when it carries
    ids. ``body`` and content attributes are redacted unless content capture is on;
    ``error_type`` is the ``exception.type`` of an exception log (None otherwise)."""

    time_unix_nano: int  # the record's time, else when it was observed
    service: str
    severity_number: int = 0
    severity_text: str | None = None
    event_name: str | None = None
    trace_id: TraceId | None = None
    span_id: SpanId | None = None
    body: AttributeValue = None
    error_type: str | None = None
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    resource: Mapping[str, AttributeValue] = field(default_factory=dict)
    span_event: bool = False  # an event of a span (OTLP traces), not a log record


@dataclass(frozen=True, slots=True)
class Deployment:
    """A change of what a service runs: a new version, a new model, or an explicit marker."""

    service: str
    time_unix_nano: int
    version: str | None = None
    previous_version: str | None = None
    model: str | None = None
    previous_model: str | None = None
    source: str = "explicit"  # "explicit" | "service.version" | "model"
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Evidence:
    signal: str
    layer: str
    baseline: float
    current: float
    unit: str


@dataclass(frozen=True, slots=True)
class SuspectedCause:
    layer: str
    signal: str
    detail: str


@dataclass(frozen=True, slots=True)
class Rollback:
    service: str
    from_version: str
    to_version: str


@dataclass(frozen=True, slots=True)
class Suggestion:
    action: str  # "rollback" | "scale_out" | "investigate" | "drain_gpu" | "compact" | ...
    detail: str
    rollback: Rollback | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """One detector's verdict on one signal; incidents group findings.

    ``key`` identifies the entity the finding is about (service, operation, model, host, GPU,
    shard); together with ``kind`` and ``started_at_ns`` it makes incident ids deterministic.
    """

    kind: str
    layer: Layer
    signal: str
    started_at_ns: int
    detected_at_ns: int
    baseline: float
    current: float
    unit: str
    severity: str
    summary: str
    service: str | None = None
    host: str | None = None
    key: str = ""
    ended_at_ns: int | None = None  # set when the signal has recovered


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    time_unix_nano: int
    event: str  # "opened" | "evidence" | "acknowledged" | "resolved" | "reopened"
    detail: str


@dataclass(frozen=True, slots=True)
class Incident:
    """An incident in DESIGN.md's schema (times as ns; the API renders RFC 3339)."""

    id: str
    kind: str
    layer: str
    service: str | None
    host: str | None
    status: str  # "open" | "acknowledged" | "resolved"
    severity: str  # "critical" | "warning" | "info"
    started_at_ns: int
    detected_at_ns: int
    summary: str
    evidence: tuple[Evidence, ...]
    suspected_cause: SuspectedCause | None
    suggestion: Suggestion | None
    resolved_at_ns: int | None = None
    events: tuple[IncidentEvent, ...] = ()


def rfc3339(ns: int | None) -> str | None:
    """Nanoseconds since the epoch as an RFC 3339 UTC string (microsecond precision)."""
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")


def incident_json(incident: Incident, *, timeline: bool = False) -> dict[str, Any]:
    """An incident in DESIGN.md's JSON shape, as the API and the webhooks send it."""
    out: dict[str, Any] = {
        "id": incident.id,
        "kind": incident.kind,
        "layer": incident.layer,
        "service": incident.service,
        "host": incident.host,
        "status": incident.status,
        "severity": incident.severity,
        "started_at": rfc3339(incident.started_at_ns),
        "detected_at": rfc3339(incident.detected_at_ns),
        "resolved_at": rfc3339(incident.resolved_at_ns),
        "summary": incident.summary,
        "evidence": [asdict(e) for e in incident.evidence],
        "suspected_cause": asdict(incident.suspected_cause) if incident.suspected_cause else None,
        "suggestion": asdict(incident.suggestion) if incident.suggestion else None,
    }
    if timeline:
        out["timeline"] = [{"time": rfc3339(e.time_unix_nano), "event": e.event,
                            "detail": e.detail} for e in incident.events]
    return out
