"""OTLP spans decoded straight into the store's columns: one row tuple per span, no
``SpanRecord`` and no per-span dicts beyond the attributes themselves.

The hot path of trace ingest (about 1 µs per protobuf accessor call under upb, so every call
per span counts): ids, times and status are read once, attributes are read and cleaned in one
pass per span (``normalize.clean_attributes``), the promoted columns picked from them, and
the attributes written as JSON once. ``SpanRecord``s are built only where something needs
them: the spans that name a model, for pricing at ingest, and every span when a records
exporter (forwarding) or a test asks for ``records()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from operator import itemgetter
from typing import Any

import pyarrow as pa
from strata.agent import semconv
from strata.agent.errors import DecodeError
from strata.agent.ingest.normalize import INT64_MAX, promote
from strata.agent.model import AttributeValue, Layer, SpanRecord
from strata.agent.protowire import SPAN_KINDS, STATUS_NAMES
from strata.agent.store.columns import SPAN_SCHEMA, CostColumns, json_text

_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)




@dataclass(frozen=True, slots=True)
class ResourceContext:
    """What every span of one resource shares (computed once per resource)."""

    attributes: dict[str, AttributeValue]
    json: str
    service: str
    version: str | None
    host: str | None
    team: str | None


def resource_context(attributes: dict[str, AttributeValue]) -> ResourceContext:
    get = attributes.get
    return ResourceContext(
        attributes=attributes,
        json=json_text(attributes),
        service=str(get(semconv.SERVICE_NAME) or "unknown_service"),
        version=None if get(semconv.SERVICE_VERSION) is None else str(get(semconv.SERVICE_VERSION)),
        host=None if get(semconv.HOST_NAME) is None else str(get(semconv.HOST_NAME)),
        team=None if get(semconv.TEAM) is None else str(get(semconv.TEAM)),
    )


# The row tuple: the store's span columns up to ``resource`` (costs and received_ns are added
# by ``to_arrow``), then the attribute and resource maps for ``records()``.
_STORED = 25  # trace_id .. team (23), attributes, resource
_COST_AT = SPAN_SCHEMA.get_field_index("cost_usd")
_ROW_FIELDS = [name for name in SPAN_SCHEMA.names if name not in (
    "cost_usd", "cost_source", "energy_wh", "energy_source", "co2e_g", "received_ns")]


class SpanColumns:
    """The spans of one request, as rows of the store's columns."""

    __slots__ = ("priced", "rows")

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.priced: list[int] = []  # rows whose span names a model (priced at ingest)

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, trace_id: bytes, span_id: bytes, parent_span_id: bytes, name: str, kind: str,
            start: int, end: int, status: str, attributes: dict[str, AttributeValue],
            resource: ResourceContext, exception_type: str | None) -> None:
        """One span whose ids and times are valid, its attributes already cleaned;
        *exception_type*: that of its exception event, if it failed."""
        promoted = promote(attributes, kind)
        error_type = promoted.error_type
        if status == "error" and error_type is None:
            error_type = exception_type or "error"
        host = attributes.get(semconv.HOST_NAME)
        if promoted.request_model is not None or promoted.response_model is not None:
            self.priced.append(len(self.rows))
        self.rows.append((
            trace_id.hex(), span_id.hex(), parent_span_id.hex() if parent_span_id else None,
            name[:1024], kind, start, end, end - start, status, resource.service,
            resource.version, promoted.layer.value, promoted.operation, promoted.provider,
            promoted.request_model, promoted.response_model, promoted.input_tokens,
            promoted.output_tokens, promoted.cache_read_tokens, promoted.reasoning_tokens,
            error_type, host if type(host) is str else resource.host, resource.team,
            json_text(attributes), resource.json, attributes, resource.attributes,
        ))

    def records(self, indices: Iterable[int] | None = None) -> list[SpanRecord]:
        """The spans (those at *indices*, default all) as SpanRecords."""
        rows = self.rows if indices is None else [self.rows[i] for i in indices]
        return [_record(row) for row in rows]

    def to_arrow(self, costs: Sequence[CostColumns] | None = None) -> pa.Table:
        """The store's columns; *costs* one per span (received_ns 0: the writer sets it at
        commit)."""
        n = len(self.rows)
        columns: list[Any] = list(zip(*self.rows, strict=True)) if n else [()] * _STORED
        cost_columns: list[Any] = list(zip(*costs, strict=True)) if costs else [(None,) * n] * 5
        ordered = [*columns[:_COST_AT], *cost_columns, *columns[_COST_AT:_STORED], (0,) * n]
        arrays = [pa.array(column, field.type)
                  for column, field in zip(ordered, SPAN_SCHEMA, strict=True)]
        return pa.Table.from_arrays(arrays, schema=SPAN_SCHEMA)


# SpanRecord's fields in its order, picked from a row by one C call (``_record`` runs for
# every span priced at ingest: a dict of the row and keyword arguments cost twice as much).
_ROW_NAME = {"start_unix_nano": "start_ns", "end_unix_nano": "end_ns"}
_RECORD_FIELDS = [f.name for f in fields(SpanRecord)]
_RECORD_VALUES = itemgetter(*(
    _STORED if name == "attributes" else _STORED + 1 if name == "resource"
    else _ROW_FIELDS.index(_ROW_NAME.get(name, name)) for name in _RECORD_FIELDS))
_LAYER_AT = _RECORD_FIELDS.index("layer")
_LAYERS = {layer.value: layer for layer in Layer}


def _record(row: tuple[Any, ...]) -> SpanRecord:
    values = list(_RECORD_VALUES(row))
    values[_LAYER_AT] = _LAYERS[values[_LAYER_AT]]
    return SpanRecord(*values)


def span_kind(code: int) -> str:
    return SPAN_KINDS[code] if 0 <= code < len(SPAN_KINDS) else "unspecified"


def status_name(code: int) -> str:
    return STATUS_NAMES[code] if 0 <= code < len(STATUS_NAMES) else "unset"


def checked_ids_and_times(span: Any) -> tuple[bytes, bytes, int, int]:
    """(trace_id, span_id, start, end) of a protobuf Span.

    Raises:
        DecodeError: an id is missing or malformed, or the times cannot be stored.
    """
    trace_id, span_id = span.trace_id, span.span_id
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE_ID:
        msg = "invalid trace_id (must be 16 non-zero bytes)"
        raise DecodeError(msg)
    if len(span_id) != 8 or span_id == _ZERO_SPAN_ID:
        msg = "invalid span_id (must be 8 non-zero bytes)"
        raise DecodeError(msg)
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if start == 0 or end < start or end > INT64_MAX:
        msg = "invalid times (start must be set, end >= start, both below 2^63 ns)"
        raise DecodeError(msg)
    return trace_id, span_id, start, end


__all__ = [
    "ResourceContext",
    "SpanColumns",
    "checked_ids_and_times",
    "resource_context",
    "span_kind",
    "status_name",
]
