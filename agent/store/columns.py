"""The ``spans`` table's columns as Arrow: what the decoder (also in its worker processes,
which do not load DuckDB) builds and ``DuckDBStore.write_batch`` inserts."""

from __future__ import annotations

from typing import Final

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

CostColumns = tuple[float | None, str | None, float | None, str | None, float | None]
"""(cost_usd, cost_source, energy_wh, energy_source, co2e_g) of one span."""

__all__ = ["SPAN_COLUMNS", "SPAN_SCHEMA", "CostColumns"]
