"""Builders for the store tests: spans and samples with known values, written through
``DuckDBStore.write_batch`` (the ingest path), and fetchnumpy columns as plain rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from strata.agent.model import Layer, Sample, SpanRecord
from strata.agent.store.db import CostColumns, DuckDBStore

S = 1_000_000_000
MIN = 60 * S
HOUR = 3600 * S
T0 = 1000 * HOUR  # an hour boundary
TRACE_A, TRACE_B = "a" * 32, "b" * 32


def span(span_id: str, start_s: float, end_s: float, *, trace: str = TRACE_A,
         service: str = "svc", layer: Layer = Layer.MODEL, **kw: Any) -> SpanRecord:
    values: dict[str, Any] = {"parent_span_id": None, "name": span_id, "kind": "client",
                              "status": "ok"}
    values.update(kw)
    return SpanRecord(trace_id=trace, span_id=span_id, start_unix_nano=T0 + int(start_s * S),
                      end_unix_nano=T0 + int(end_s * S), service=service, layer=layer, **values)


def sample(name: str, value: float, t_s: float, *, canonical: str | None = None,
           layer: Layer = Layer.INFRASTRUCTURE, unit: str = "1", **kw: Any) -> Sample:
    return Sample(name, value, unit, layer, T0 + int(t_s * S), canonical=canonical, **kw)


def write(store: DuckDBStore, spans: Sequence[SpanRecord] = (), samples: Sequence[Sample] = (),
          *, received_ns: int = 1, costs: Sequence[CostColumns] | None = None) -> None:
    store.write_batch(spans, samples, received_ns=received_ns, costs=costs)


def column_rows(cols: dict[str, np.ndarray]) -> list[tuple[Any, ...]]:
    """fetchnumpy columns as sorted rows of Python values (NULL as None)."""
    names = list(cols)
    rows = []
    for i in range(len(cols[names[0]])):
        row = []
        for name in names:
            value = cols[name][i]
            row.append(None if value is np.ma.masked else
                       value.item() if isinstance(value, np.generic) else value)
        rows.append(tuple(row))
    return sorted(rows)
