"""Strata's records as rows of the Collector's tables (the hub's writes and the forwarder).

A span becomes one ``otel_traces`` row: its attributes and resource as string maps (the
Collector's ``AsString`` forms), with Strata's normalised fields and enrichment written into
the GenAI semantic-convention keys and ``strata.*`` keys that ``strata_schema.sql``
materialises. A sample becomes one ``otel_metrics_gauge`` row (Strata keeps points, not
OTLP's metric kinds) with ``strata.canonical|layer|host|device`` attributes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from operator import attrgetter
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from strata.agent.model import LogRecord, Sample, SpanRecord

SPAN_TABLE: Final = "otel_traces"
SAMPLE_TABLE: Final = "otel_metrics_gauge"
LOG_TABLE: Final = "otel_logs"
_STATUS: Final = {"ok": "Ok", "error": "Error"}  # else "Unset", as the Collector writes it
_KIND: Final = {"internal": "Internal", "server": "Server", "client": "Client",
                "producer": "Producer", "consumer": "Consumer"}
_MAP = pa.map_(pa.string(), pa.string())
_TIME = pa.timestamp("ns", tz="UTC")
SPAN_SCHEMA: Final = pa.schema([
    ("Timestamp", _TIME), ("TraceId", pa.string()), ("SpanId", pa.string()),
    ("ParentSpanId", pa.string()), ("SpanName", pa.string()), ("SpanKind", pa.string()),
    ("ServiceName", pa.string()), ("ResourceAttributes", _MAP), ("SpanAttributes", _MAP),
    ("Duration", pa.uint64()), ("StatusCode", pa.string()),
])
SAMPLE_SCHEMA: Final = pa.schema([
    ("ResourceAttributes", _MAP), ("ServiceName", pa.string()), ("MetricName", pa.string()),
    ("MetricUnit", pa.string()), ("Attributes", _MAP), ("TimeUnix", _TIME),
    ("Value", pa.float64()),
])
LOG_SCHEMA: Final = pa.schema([
    ("Timestamp", _TIME), ("TraceId", pa.string()), ("SpanId", pa.string()),
    ("SeverityText", pa.string()), ("SeverityNumber", pa.uint8()), ("ServiceName", pa.string()),
    ("Body", pa.string()), ("ResourceAttributes", _MAP), ("LogAttributes", _MAP),
    ("EventName", pa.string()),
])
CostColumns = tuple[float | None, str | None, float | None, str | None, float | None]
_COST_KEYS: Final = ("gen_ai.usage.cost.usd", "strata.cost.source", "strata.energy.wh",
                     "strata.energy.source", "strata.co2e.g")


def _text(value: Any) -> str:
    if type(value) is str:  # the common case first: this runs per attribute on ingest
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _pairs(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(k, _text(v)) for k, v in values.items() if v is not None]


def _sorted_map(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Pairs sorted by key: equal maps are equal rows (ClickHouse groups maps by order)."""
    return sorted(_pairs(values))


# The span's scalar fields, read in one pass (``zip(*map(...))``: one tuple a span, then
# columns); the last ten go into its attribute map under _FIELD_KEYS.
_SPAN_FIELDS: Final = attrgetter(
    "trace_id", "span_id", "parent_span_id", "name", "kind", "start_unix_nano",
    "end_unix_nano", "status", "service", "service_version", "resource",
    "layer", "operation", "provider", "request_model", "response_model", "input_tokens",
    "output_tokens", "error_type", "team", "host")
_FIELD_KEYS: Final = ("strata.layer", "gen_ai.operation.name", "gen_ai.provider.name",
                      "gen_ai.request.model", "gen_ai.response.model",
                      "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "error.type",
                      "strata.team", "strata.host")
# keys the normalised fields own: a raw value the normaliser rejected must not reappear
# (gen_ai.system is folded into gen_ai.provider.name)
_OWNED: Final = pa.array([*_FIELD_KEYS, "gen_ai.system"])
_OWNED_PRICED: Final = pa.array([*_FIELD_KEYS, "gen_ai.system", *_COST_KEYS])


def _texts(values: Iterable[Any]) -> list[str | None]:
    """``_text`` of each value, None kept (a missing field or a null attribute: no entry)."""
    return [v if v is None or type(v) is str else _text(v) for v in values]


def _strings(*columns: Sequence[str | None]) -> list[pa.Array]:
    return [pa.array(column, pa.string()) for column in columns]


def _span_maps(attributes: Sequence[Mapping[str, Any]], fields: Sequence[pa.Array],
               field_keys: Sequence[str], owned: pa.Array) -> pa.MapArray:
    """Each span's attributes, less the *owned* keys, then its *fields* (one text column per
    key of *field_keys*, null: no entry).

    Built a column at a time (this runs on every forwarded span): the raw entries of all
    spans as one flat list, the fields column after column, then a stable sort by span puts
    each span's entries together. Never grouped by: the order is not sorted.
    """
    n = len(attributes)
    raw_keys = pa.array(list(chain.from_iterable(attributes)), pa.string())
    raw = len(raw_keys)
    keys = pa.concat_arrays([raw_keys, pa.array(field_keys, pa.string()).take(
        pa.array(np.repeat(np.arange(len(field_keys), dtype=np.int32), n)))])
    values = pa.concat_arrays([
        pa.array(_texts(chain.from_iterable(a.values() for a in attributes)), pa.string()),
        *fields])
    rows = np.concatenate([np.repeat(np.arange(n), [len(a) for a in attributes]),
                           np.tile(np.arange(n), len(field_keys))])
    kept = pc.is_valid(values).to_numpy(zero_copy_only=False)
    kept[:raw] &= ~pc.is_in(raw_keys, owned).to_numpy(zero_copy_only=False)
    rows = rows[kept]
    order = pa.array(np.flatnonzero(kept)[np.argsort(rows, kind="stable")])
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
    return pa.MapArray.from_arrays(pa.array(offsets), keys.take(order), values.take(order))


def _resource_maps(resources: Sequence[Mapping[str, Any]], services: Sequence[str],
                   versions: Sequence[str | None]) -> pa.MapArray:
    """Each span's resource with its service; spans of one request share their resource
    map: each distinct one is encoded once."""
    keys = list(zip(map(id, resources), services, versions, strict=True))
    row_of = {key: row for row, key in enumerate(dict.fromkeys(keys))}
    first = dict(zip(keys, resources, strict=True))  # ids are of objects alive here
    distinct = []
    for key in row_of:
        values = dict(first[key])
        values["service.name"] = key[1]
        if key[2] is not None:
            values["service.version"] = key[2]
        distinct.append(_pairs(values))
    return pa.array(distinct, _MAP).take(pa.array(list(map(row_of.__getitem__, keys)),
                                                  pa.int32()))


def spans_table(spans: Sequence[SpanRecord],
                costs: Sequence[CostColumns] | None = None) -> pa.Table:
    """``otel_traces`` rows of *spans* (*costs*: one per span when priced at ingest)."""
    if not spans:
        return SPAN_SCHEMA.empty_table()
    (trace_ids, span_ids, parents, names, kinds, starts, ends, statuses, services, versions,
     resources, layers, operations, providers, request_models, response_models, input_tokens,
     output_tokens, error_types, teams, hosts) = zip(*map(_SPAN_FIELDS, spans), strict=True)
    kind_names = {k: _KIND.get(k.lower(), k) for k in set(kinds)}
    status_names = {s: _STATUS.get(s, "Unset") for s in set(statuses)}
    start = np.array(starts, np.int64)
    duration = np.maximum(np.array(ends, np.int64) - start, 0).astype(np.uint64)
    columns = [  # in _FIELD_KEYS' order; Layer is a StrEnum: Arrow takes it as text
        *_strings(layers, operations, providers, request_models, response_models),
        # counts are in the BIGINT range (the normaliser); text as repr() writes an int
        pa.array(input_tokens, pa.int64()).cast(pa.string()),
        pa.array(output_tokens, pa.int64()).cast(pa.string()),
        *_strings(error_types, teams, hosts)]
    if costs:  # priced here; else keep what a sidecar's enrichment carried
        usd, usd_source, energy, energy_source, co2e = zip(*costs, strict=True)
        columns += _strings(_texts(usd), usd_source, _texts(energy), energy_source,
                            _texts(co2e))
    attributes = _span_maps([s.attributes for s in spans], columns,
                            _FIELD_KEYS + _COST_KEYS if costs else _FIELD_KEYS,
                            _OWNED_PRICED if costs else _OWNED)
    return pa.Table.from_arrays([
        pa.array(start).cast(_TIME),
        pa.array(trace_ids, pa.string()),
        pa.array(span_ids, pa.string()),
        pc.fill_null(pa.array(parents, pa.string()), ""),
        pa.array(names, pa.string()),
        pa.array(map(kind_names.__getitem__, kinds), pa.string(), size=len(spans)),
        pa.array(services, pa.string()),
        _resource_maps(resources, services, versions),
        attributes,
        pa.array(duration),
        pa.array(map(status_names.__getitem__, statuses), pa.string(), size=len(spans)),
    ], schema=SPAN_SCHEMA)


def samples_table(samples: Sequence[Sample]) -> pa.Table:
    """``otel_metrics_gauge`` rows of *samples*."""
    def attributes(s: Sample) -> list[tuple[str, str]]:
        values: dict[str, Any] = dict(s.attributes)
        values.update({"strata.canonical": s.canonical, "strata.layer": str(s.layer),
                       "strata.host": s.host, "strata.device": s.device})
        return _sorted_map(values)

    return pa.Table.from_pydict({
        "ResourceAttributes": [[] for _ in samples],
        "ServiceName": [s.service or "" for s in samples],
        "MetricName": [s.name for s in samples],
        "MetricUnit": [s.unit for s in samples],
        "Attributes": [attributes(s) for s in samples],
        "TimeUnix": [s.time_unix_nano for s in samples],
        "Value": [s.value for s in samples],
    }, schema=SAMPLE_SCHEMA)


def logs_table(logs: Sequence[LogRecord]) -> pa.Table:
    """``otel_logs`` rows of *logs* (already redacted at ingest); a span event is marked with
    ``strata.span_event`` and an exception's type kept as ``exception.type``."""
    def attributes(r: LogRecord) -> list[tuple[str, str]]:
        values: dict[str, Any] = dict(r.attributes)
        if r.error_type is not None:
            values["exception.type"] = r.error_type
        if r.span_event:
            values["strata.span_event"] = True
        return _sorted_map(values)

    return pa.Table.from_pydict({
        "Timestamp": [r.time_unix_nano for r in logs],
        "TraceId": [r.trace_id or "" for r in logs],
        "SpanId": [r.span_id or "" for r in logs],
        "SeverityText": [r.severity_text or "" for r in logs],
        "SeverityNumber": [max(0, min(255, r.severity_number)) for r in logs],
        "ServiceName": [r.service for r in logs],
        "Body": ["" if r.body is None else _text(r.body) for r in logs],
        "ResourceAttributes": [_sorted_map(r.resource) for r in logs],
        "LogAttributes": [attributes(r) for r in logs],
        "EventName": [r.event_name or "" for r in logs],
    }, schema=LOG_SCHEMA)
