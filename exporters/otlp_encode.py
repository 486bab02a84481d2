"""Encode Strata records back into OTLP protobuf request bodies. Pure functions.

The forwarder sends what ingest *kept*, never the raw request body: attributes are the
normalised, redacted ones (prompt text that ingest replaced by a length and a salted hash
stays replaced), and each record gains what the agent learnt about it:

- ``strata.layer`` on every span and data point;
- ``gen_ai.usage.cost.usd``, ``strata.energy.wh``, ``strata.energy.source`` and
  ``strata.co2e.g`` on spans whose cost or energy is known at ingest (absent otherwise,
  never zero).

Spans that shared a resource in the request share one ``ResourceSpans`` again. Samples are
sent as gauges under the name they were received with (a histogram arrives here already
reduced to ``.count`` / ``.sum`` / ``.p50`` / ``.p95`` points), grouped by service and host.

The bytes are written field by field in the protobuf wire format rather than built from
the generated message classes: constructing and copying upb messages costs about as much as
decoding the request did (~40 µs a span), and this runs on the ingest path. Tests parse the
output with the generated classes and compare it with the records. The wire primitives and
the span kind and status tables are shared with the SDK's encoder (``strata.agent.protowire``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from strata.agent import __version__
from strata.agent.model import AttributeValue, Sample, SpanRecord
from strata.agent.protowire import (
    SPAN_KIND_CODES,
    STATUS_CODES,
    field,
    pack_double,
    pack_fixed64,
    varint,
)

if TYPE_CHECKING:
    from strata.agent.store.db import CostColumns

__all__ = [
    "CO2E_G",
    "COST_USD",
    "ENERGY_SOURCE",
    "ENERGY_WH",
    "LAYER",
    "encode_any_value",
    "encode_metrics_request",
    "encode_trace_request",
]

LAYER = "strata.layer"
COST_USD = "gen_ai.usage.cost.usd"
ENERGY_WH = "strata.energy.wh"
ENERGY_SOURCE = "strata.energy.source"
CO2E_G = "strata.co2e.g"
SCOPE_NAME = "strata.forward"
MAX_DEPTH = 32  # ingest already refused deeper values; this only guards direct callers
_ENRICHED_KEYS = frozenset({LAYER, COST_USD, ENERGY_WH, ENERGY_SOURCE, CO2E_G})
_CACHE_LIMIT = 8192
_CACHE_VALUE_CHARS = 256
# Encoded attribute entries by (field tag, key, type, value). The same keys and short values
# (models, providers, operations) repeat on nearly every span; bounded because values can
# be attacker-chosen, and cleared when full rather than evicted one by one.
_entry_cache: dict[tuple[bytes, str, type, object], bytes] = {}
_seen_once: set[tuple[bytes, str, type, object]] = set()


def _text(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass")


def encode_any_value(value: AttributeValue, depth: int = 0) -> bytes:
    """The wire bytes of an OTLP ``AnyValue`` for a plain Python value (None: empty)."""
    if isinstance(value, str):
        return field(b"\x0a", _text(value))
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        if -(2**63) <= value < 2**63:
            return b"\x18" + varint(value)
        return field(b"\x0a", str(value).encode())
    if isinstance(value, float):
        return b"\x21" + pack_double(value)
    if value is None:
        return b""
    if depth >= MAX_DEPTH:
        return field(b"\x0a", _text(repr(value)[:1024]))
    if isinstance(value, list):
        items = b"".join(field(b"\x0a", encode_any_value(v, depth + 1)) for v in value)
        return field(b"\x2a", items)
    if isinstance(value, dict):
        entries = b"".join(_key_value(b"\x0a", str(k), v, depth + 1) for k, v in value.items())
        return field(b"\x32", entries)
    return field(b"\x0a", _text(str(value)))


def _key_value(tag: bytes, key: str, value: AttributeValue, depth: int = 0) -> bytes:
    """A ``KeyValue`` as a length-delimited field with *tag* (its field in the parent)."""
    encoded = field(b"\x0a", _text(key)) + field(b"\x12", encode_any_value(value, depth))
    return field(tag, encoded)


def _attribute(tag: bytes, key: str, value: AttributeValue) -> bytes:
    cache_key = (tag, key, value.__class__, value)
    try:
        entry = _entry_cache.get(cache_key)
    except TypeError:  # list or dict value: unhashable, not cached
        return _key_value(tag, key, value)
    if entry is None:
        entry = _key_value(tag, key, value)
        if cache_key in _seen_once:  # admitted on its second sighting: unique values
            if len(_entry_cache) >= _CACHE_LIMIT:  # (token counts, content hashes) stay out
                _entry_cache.clear()
            _entry_cache[cache_key] = entry
        elif not isinstance(value, str) or len(value) <= _CACHE_VALUE_CHARS:
            if len(_seen_once) >= _CACHE_LIMIT:
                _seen_once.clear()
            _seen_once.add(cache_key)
    return entry


def _attributes(tag: bytes, attributes: Mapping[str, AttributeValue]) -> list[bytes]:
    return [_attribute(tag, k, v) for k, v in attributes.items()
            if v is not None and k not in _ENRICHED_KEYS]


def _double_prefix(key: str) -> bytes:
    """A span attribute ``KeyValue(key, double)`` up to the 8 value bytes (fixed length)."""
    key_field = field(b"\x0a", key.encode())
    return b"\x4a" + varint(len(key_field) + 11) + key_field + b"\x12\x09\x21"


_USD, _WH, _CO2E = _double_prefix(COST_USD), _double_prefix(ENERGY_WH), _double_prefix(CO2E_G)


def _enrichment(parts: list[bytes], layer: str, cost: CostColumns | None) -> None:
    parts.append(_attribute(b"\x4a", LAYER, layer))
    if cost is None:
        return
    usd, _usd_source, energy_wh, energy_source, co2e_g = cost
    if usd is not None:
        parts += (_USD, pack_double(usd))
    if energy_wh is not None:
        parts += (_WH, pack_double(energy_wh))
        if energy_source:
            parts.append(_attribute(b"\x4a", ENERGY_SOURCE, energy_source))
    if co2e_g is not None:
        parts += (_CO2E, pack_double(co2e_g))


def _span(record: SpanRecord, cost: CostColumns | None) -> bytes:
    parts = [
        b"\x0a\x10", bytes.fromhex(record.trace_id),
        b"\x12\x08", bytes.fromhex(record.span_id),
    ]
    if record.parent_span_id:
        parts += (b"\x22\x08", bytes.fromhex(record.parent_span_id))
    parts.append(field(b"\x2a", _text(record.name)))
    kind = SPAN_KIND_CODES.get(record.kind, 0)
    if kind:
        parts.append(b"\x30" + varint(kind))
    parts += (b"\x39", pack_fixed64(record.start_unix_nano),
              b"\x41", pack_fixed64(record.end_unix_nano))
    parts += _attributes(b"\x4a", record.attributes)
    _enrichment(parts, record.layer.value, cost)
    status = STATUS_CODES.get(record.status, 0)
    if status:
        parts.append(field(b"\x7a", b"\x18" + varint(status)))
    return field(b"\x12", b"".join(parts))


_SCOPE = field(b"\x0a", field(b"\x0a", SCOPE_NAME.encode()) + field(b"\x12",
                                                                         __version__.encode()))


def encode_trace_request(
    spans: Sequence[SpanRecord], costs: Sequence[CostColumns | None] | None = None
) -> bytes:
    """A serialised ``ExportTraceServiceRequest`` with *spans*, enriched (see module doc).

    Args:
        spans: normalised, redacted spans as committed.
        costs: one entry per span (None where unpriced), or None when nothing is priced.

    Returns:
        Protobuf bytes; spans keep their order within each resource.
    """
    groups: dict[int, tuple[Mapping[str, AttributeValue], list[bytes]]] = {}
    for index, record in enumerate(spans):
        group = groups.get(id(record.resource))
        if group is None:
            group = groups[id(record.resource)] = (record.resource, [])
        group[1].append(_span(record, costs[index] if costs else None))
    out = []
    for resource, encoded in groups.values():
        resource_bytes = field(b"\x0a", b"".join(_attributes(b"\x0a", resource)))
        scope_spans = field(b"\x12", _SCOPE + b"".join(encoded))
        out.append(field(b"\x0a", resource_bytes + scope_spans))
    return b"".join(out)


def _data_point(sample: Sample) -> bytes:
    parts = [_attribute(b"\x3a", k, str(v)) for k, v in sample.attributes.items() if k != LAYER]
    parts.append(_attribute(b"\x3a", LAYER, sample.layer.value))
    parts += (b"\x19", pack_fixed64(sample.time_unix_nano), b"\x21", pack_double(sample.value))
    return field(b"\x0a", b"".join(parts))


def encode_metrics_request(samples: Iterable[Sample]) -> bytes:
    """A serialised ``ExportMetricsServiceRequest``: one gauge point per sample.

    Points keep their event time and labels and gain ``strata.layer``; samples are grouped
    into one ResourceMetrics per (service, host) and one Metric per (name, unit).
    """
    resources: dict[tuple[str | None, str | None], dict[tuple[str, str], list[bytes]]] = {}
    for sample in samples:
        metrics = resources.setdefault((sample.service, sample.host), {})
        metrics.setdefault((sample.name, sample.unit), []).append(_data_point(sample))
    out = []
    for (service, host), metrics in resources.items():
        attributes = b""
        if service is not None:
            attributes += _attribute(b"\x0a", "service.name", service)
        if host is not None:
            attributes += _attribute(b"\x0a", "host.name", host)
        encoded = [
            field(b"\x12", field(b"\x0a", _text(name)) + field(b"\x1a", _text(unit))
                   + field(b"\x2a", b"".join(points)))
            for (name, unit), points in metrics.items()
        ]
        scope_metrics = field(b"\x12", _SCOPE + b"".join(encoded))
        out.append(field(b"\x0a", field(b"\x0a", attributes) + scope_metrics))
    return b"".join(out)
