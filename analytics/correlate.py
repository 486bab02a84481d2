"""Join spans to the layer samples that describe where and when they ran.

Pure functions: spans and samples in, per-span signal summaries out; no clock, no I/O.

Which samples belong to a span (``CorrelationTargets``, ``sample_matches``):

- **infrastructure**: samples of the span's GPUs, ``(host, device)`` from
  ``strata.analytics.attribution.gpu_keys_of`` (the ``gpu.uuid`` / ``gpu.id`` attribute, compared
  with the sample's device exactly: NVML and DCGM report the GPU UUID), and the host-level
  ``system.*`` signals of the span's host. GPUs of the same host that the span did not run
  on are not included.
- **serving**: for a span that names a model (or is a serving-layer span), the serving
  samples of the server it called: ``server.address`` equal to the sample's host (a scraped
  target's URL host) or service (an OTLP-pushed resource ``service.name``); without
  ``server.address``, samples of the span's own host. A sample with a device names the
  model it is about (vLLM ``model_name``, Triton ``model``) and must be one of the span's
  models, unless the device is just the target (``device == service``).
- **data**: for a vector-DB span (data layer, or ``db.system.name`` set), the data samples
  of its server (the same host rule), restricted to its collection (``db.collection.name``
  or ``db.namespace`` against the sample's ``collection``/``collection_name``/
  ``class_name`` label) and shard (``db.shard`` or ``db.vector.shard`` against the
  ``shard``/``shard_name``/``shard_id`` label, or a Qdrant ``collection/shard`` device).
  Instance-level samples with no collection label are kept.

Time: a sample series covers the span when its points fall inside ``[start, end]``; the
last point before the start and the first after the end are included too (within
``pad_ns``), because a gauge sampled every few seconds describes the span through the
readings that bracket it.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from strata.agent.model import Layer, Sample, SpanRecord
from strata.agent.units import MINUTE_NS
from strata.analytics.attribution import GPUKey, SpanKey, gpu_keys_of, span_key

__all__ = [
    "DEFAULT_PAD_NS",
    "CorrelationTargets",
    "Move",
    "SignalSummary",
    "correlate_spans",
    "correlation_hosts",
    "correlation_targets",
    "is_key_signal",
    "rank_moves",
    "sample_matches",
    "series_key",
]

DEFAULT_PAD_NS: Final = MINUTE_NS
SERVER_ADDRESS: Final = "server.address"
COLLECTION_ATTRIBUTES: Final = ("db.collection.name", "db.namespace")
SHARD_ATTRIBUTES: Final = ("db.shard", "db.vector.shard")
COLLECTION_LABELS: Final = ("collection", "collection_name", "class_name")
SHARD_LABELS: Final = ("shard", "shard_name", "shard_id")
INFRA_SIGNALS: Final = frozenset({
    "gpu.utilization", "gpu.temperature", "gpu.memory.temperature", "gpu.power.draw",
    "gpu.clock_event_reasons", "gpu.memory.used", "gpu.memory.utilization", "gpu.clock.sm",
    "gpu.energy.consumed", "gpu.xid", "gpu.fan.speed", "system.cpu.utilization",
    "system.memory.utilization",
})  # fmt: skip
COUNTER_SIGNALS: Final = frozenset({"gpu.energy.consumed"})
_SERIES_SUFFIXES: Final = (".bucket", ".count", ".sum", ".created")

SeriesKey = tuple[str, str, str, str | None, str | None, str | None, tuple[tuple[str, str], ...]]
"""(layer, signal, name, host, device, service, labels) of one sample series."""


@dataclass(frozen=True, slots=True)
class CorrelationTargets:
    """What identifies the infrastructure, server and shard a span ran against."""

    host: str | None
    gpus: frozenset[GPUKey]
    server: str | None  # server.address
    models: frozenset[str]
    serving: bool  # names a model or is a serving-layer span
    data: bool  # a vector-DB span
    collection: str | None
    shard: str | None


@dataclass(frozen=True, slots=True)
class SignalSummary:
    """One sample series over a span's window (values in the series' unit)."""

    layer: str
    signal: str  # canonical name, else the name as received
    name: str  # as received
    unit: str
    host: str | None
    device: str | None
    service: str | None
    labels: Mapping[str, str]
    count: int
    min: float
    mean: float
    max: float
    last: float
    first_ns: int
    last_ns: int
    delta: float | None  # last - first, for cumulative counters (energy), else None


def _text(value: object) -> str | None:
    if value is None or isinstance(value, bool | list | dict):
        return None
    return str(value)


def correlation_targets(span: SpanRecord) -> CorrelationTargets:
    """The keys that tie *span* to layer samples (module docstring)."""
    attrs = span.attributes
    models = frozenset(m for m in (span.request_model, span.response_model) if m)
    data = span.layer == Layer.DATA or attrs.get("db.system.name") is not None
    return CorrelationTargets(
        host=span.host,
        gpus=frozenset(gpu_keys_of(span)),
        server=_text(attrs.get(SERVER_ADDRESS)),
        models=models,
        serving=bool(models) or span.layer == Layer.SERVING,
        data=data,
        collection=next((_text(attrs[k]) for k in COLLECTION_ATTRIBUTES if k in attrs), None),
        shard=next((_text(attrs[k]) for k in SHARD_ATTRIBUTES if k in attrs), None),
    )


def correlation_hosts(targets: Iterable[CorrelationTargets]) -> set[str]:
    """Every host or service name a sample must carry to match one of *targets*."""
    hosts: set[str] = set()
    for t in targets:
        hosts.update(h for h in (t.host, t.server) if h)
        hosts.update(host for host, _ in t.gpus)
    return hosts


def is_key_signal(sample: Sample) -> bool:
    """True for the signals the trace view summarises (no histogram bucket/count series)."""
    signal = sample.canonical or sample.name
    if signal.endswith(_SERIES_SUFFIXES):
        return False
    if sample.layer == Layer.INFRASTRUCTURE:
        return signal in INFRA_SIGNALS or signal.startswith("gpu.throttle.")
    return sample.layer in (Layer.SERVING, Layer.DATA)


def _on_server(t: CorrelationTargets, sample: Sample) -> bool:
    if t.server is not None:
        return t.server in (sample.host, sample.service)
    return t.host is not None and sample.host == t.host


def _in_shard(t: CorrelationTargets, sample: Sample) -> bool:
    labels = sample.attributes
    collection = next((labels[k] for k in COLLECTION_LABELS if labels.get(k)), None)
    shard = next((labels[k] for k in SHARD_LABELS if labels.get(k)), None)
    device = sample.device or ""
    if collection is None and "/" in device and device != sample.service:
        collection, _, shard = device.partition("/")  # Qdrant telemetry: collection/shard
    if t.collection is not None and collection is not None and collection != t.collection:
        return False
    return t.shard is None or shard is None or shard == t.shard


def sample_matches(t: CorrelationTargets, sample: Sample) -> bool:
    """Whether *sample* describes the GPU, server or shard of the span behind *t*."""
    if sample.layer == Layer.INFRASTRUCTURE:
        signal = sample.canonical or sample.name
        if signal.startswith("system."):
            return t.host is not None and sample.host == t.host
        return (sample.host or "", sample.device or "") in t.gpus
    if sample.layer == Layer.SERVING:
        if not t.serving or not _on_server(t, sample):
            return False
        device = sample.device
        return device is None or device == sample.service or device in t.models
    if sample.layer == Layer.DATA:
        return t.data and _on_server(t, sample) and _in_shard(t, sample)
    return False


def series_key(sample: Sample) -> SeriesKey:
    return (
        str(sample.layer), sample.canonical or sample.name, sample.name, sample.host,
        sample.device, sample.service, tuple(sorted(sample.attributes.items())),
    )  # fmt: skip


def correlate_spans(
    spans: Sequence[SpanRecord], samples: Iterable[Sample], *, pad_ns: int = DEFAULT_PAD_NS
) -> dict[SpanKey, tuple[SignalSummary, ...]]:
    """Summaries of the key signals around each span, ordered by layer, signal, host, device.

    Args:
        spans: the spans to describe (typically one trace).
        samples: candidate samples (any hosts; non-matching ones are ignored).
        pad_ns: how far before the start / after the end a bracketing reading may lie.

    Returns:
        Per span key, its summaries; spans with nothing matched map to ``()``.
    """
    series: dict[SeriesKey, list[Sample]] = {}
    for sample in samples:
        if is_key_signal(sample):
            series.setdefault(series_key(sample), []).append(sample)
    ordered = []
    for key, points in sorted(series.items(), key=lambda kv: _sort_key(kv[0])):
        points.sort(key=lambda s: s.time_unix_nano)
        ordered.append((key, points, [p.time_unix_nano for p in points]))
    out: dict[SpanKey, tuple[SignalSummary, ...]] = {}
    for span in spans:
        targets = correlation_targets(span)
        found = []
        for key, points, times in ordered:
            if not sample_matches(targets, points[0]):
                continue
            chosen = _window(points, times, span.start_unix_nano, span.end_unix_nano, pad_ns)
            if chosen:
                found.append(_summary(key, chosen))
        out[span_key(span)] = tuple(found)
    return out


def _sort_key(key: SeriesKey) -> tuple[str, ...]:
    return tuple("" if part is None else str(part) for part in key)


def _window(
    points: Sequence[Sample], times: Sequence[int], start: int, end: int, pad_ns: int
) -> Sequence[Sample]:
    lo = bisect_left(times, start)
    hi = bisect_right(times, end)
    if lo > 0 and start - times[lo - 1] <= pad_ns:
        lo -= 1
    if hi < len(times) and times[hi] - end <= pad_ns:
        hi += 1
    return points[lo:hi]


def _summary(key: SeriesKey, points: Sequence[Sample]) -> SignalSummary:
    layer, signal, name, host, device, service, labels = key
    values = [p.value for p in points]
    return SignalSummary(
        layer=layer,
        signal=signal,
        name=name,
        unit=points[0].unit,
        host=host,
        device=device,
        service=service,
        labels=dict(labels),
        count=len(values),
        min=min(values),
        mean=sum(values) / len(values),
        max=max(values),
        last=values[-1],
        first_ns=points[0].time_unix_nano,
        last_ns=points[-1].time_unix_nano,
        delta=_increase(values) if signal in COUNTER_SIGNALS else None,
    )


def _increase(values: Sequence[float]) -> float:
    """Increase of a cumulative counter; a drop is a reset (the new reading is the increase)."""
    return sum(b - a if b >= a else b for a, b in itertools.pairwise(values))


@dataclass(frozen=True, slots=True)
class Move:
    """How much one series changed between the first and second half of a time range."""

    index: int  # position of the series in the input
    before: float
    after: float
    relative_change: float | None  # (after - before) / |before|; None when before is 0


def rank_moves(series: Sequence[Sequence[float | None]], *, min_points: int = 2) -> list[Move]:
    """Series ordered by how much they moved: mean of the second half against the first.

    Answers "latency went up: what else moved?" over aligned step series. A series needs
    *min_points* values in each half; one whose first half averages 0 ranks by any change.
    """
    moves = []
    for i, values in enumerate(series):
        half = len(values) // 2
        first = [v for v in values[:half] if v is not None]
        second = [v for v in values[half:] if v is not None]
        if len(first) < min_points or len(second) < min_points:
            continue
        before, after = sum(first) / len(first), sum(second) / len(second)
        relative = (after - before) / abs(before) if before else None
        moves.append(Move(i, before, after, relative))
    moves.sort(key=lambda m: -(abs(m.relative_change) if m.relative_change is not None
                               else (float("inf") if m.after != m.before else 0.0)))
    return moves
