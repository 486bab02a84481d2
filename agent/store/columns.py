"""The ``spans`` table's columns as Arrow: what the decoder (also in its worker processes,
which do not load DuckDB) builds and ``DuckDBStore.write_batch`` inserts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

import orjson
import pyarrow as pa

SPAN_COLUMNS: Final = (
    "trace_id", "span_id", "parent_span_id", "name", "kind", "start_ns", "end_ns", "duration_ns",
    "status", "service", "service_version", "layer", "operation", "provider", "request_model",
    "response_model", "input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens",
    "error_type", "host", "team", "cost_usd", "cost_source", "energy_wh", "energy_source", "co2e_g",
    "attributes", "resource", "received_ns",
)  # fmt: skip
SPAN_SCHEMA: Final = pa.schema([
    (c, pa.int64() if c.endswith(("_ns", "_tokens")) else
     pa.float64() if c in {"cost_usd", "energy_wh", "co2e_g"} else pa.string())
    for c in SPAN_COLUMNS
])


def trace_key_sql(trace_id: str) -> str:
    """SQL for the ``trace_key`` column (of ``spans`` and ``logs``) of the trace id *trace_id*
    (a column or a parameter): its first 15 hex digits as a BIGINT, NULL when they are not
    hex. DuckDB computes it at insert and at lookup, so the two cannot disagree."""
    return f"TRY_CAST('0x' || left({trace_id}, 15) AS BIGINT)"


ONE_TRACE_SQL: Final = (f"(trace_key = {trace_key_sql('?')} OR trace_key IS NULL) "
                        "AND trace_id = ?")
"""The rows of one trace (``spans`` or ``logs``), parameters (trace_id, trace_id). The BIGINT
key narrows the scan to a row or two per million, where comparing every 32-character id
costs about ten times as much; then the id itself is compared. A row without a key (a
non-hex id, or one inserted by a path that did not compute it) is still found, only slower.
DuckDB drops the ``IS NULL`` arm for row groups whose statistics say they hold no NULL."""


CostColumns = tuple[float | None, str | None, float | None, str | None, float | None]
"""(cost_usd, cost_source, energy_wh, energy_source, co2e_g) of one span."""


def _stdlib_encoder() -> Callable[[Any], str]:
    """Compact JSON text (non-ASCII kept, unknown types as ``str``) from one reused C
    encoder: ``json.dumps`` with these options builds a new encoder on every call, a third
    of its cost on an attribute map. No circular-reference check: the values are decoded
    trees (depth-bounded at ingest)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has the C accelerator
        return json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode
    encode = make(None, str, json.encoder.encode_basestring, None, ":", ",", False, False, True)
    join = "".join
    return lambda value: join(encode(value, 0))


_stdlib_json_text = _stdlib_encoder()


def json_text(value: Any) -> str:
    """The JSON text of an attribute, resource or label map, as the store keeps it: compact,
    non-ASCII kept, unknown types as ``str``.

    orjson writes it, about 8x faster than the stdlib's C encoder (once per span on the
    ingest path). What orjson refuses (an int past 64 bits, a lone surrogate, a key that is
    not a string) goes to the stdlib's encoder, and so does any text with a ``null`` in it:
    orjson writes NaN and infinities as null, where the store keeps them as DuckDB's JSON
    reads them (``NaN``, ``Infinity``)."""
    try:
        text = orjson.dumps(value, default=str)
    except orjson.JSONEncodeError:
        return _stdlib_json_text(value)
    return _stdlib_json_text(value) if b"null" in text else text.decode()


__all__ = ["ONE_TRACE_SQL", "SPAN_COLUMNS", "SPAN_SCHEMA", "CostColumns", "json_text",
           "trace_key_sql"]
