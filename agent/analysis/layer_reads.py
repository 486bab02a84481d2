"""Correlation of a trace with its layers: the infrastructure, serving and data samples
around each span, summarised per series (``strata.analytics.correlate``).

The reads go through the store seam (``ReportReads``: DuckDB or the hub's ClickHouse).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from strata.agent.model import Layer
from strata.agent.store.seam import ReportReads
from strata.agent.store.spans import span_record
from strata.analytics.correlate import (
    DEFAULT_PAD_NS,
    SignalSummary,
    correlate_spans,
    correlation_hosts,
    correlation_targets,
)

__all__ = ["CORRELATED_LAYERS", "correlate_trace", "summary_json"]

CORRELATED_LAYERS: Final = (Layer.INFRASTRUCTURE, Layer.SERVING, Layer.DATA)


def _time(ns: int | None) -> str | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")


def summary_json(s: SignalSummary) -> dict[str, Any]:
    return {
        "signal": s.signal, "name": s.name, "unit": s.unit, "host": s.host, "device": s.device,
        "service": s.service, "labels": dict(s.labels), "count": s.count, "min": s.min,
        "mean": s.mean, "max": s.max, "last": s.last, "delta": s.delta,
        "first_time": _time(s.first_ns), "last_time": _time(s.last_ns),
    }  # fmt: skip


def correlate_trace(
    reads: ReportReads, spans: list[dict[str, Any]], *, pad_ns: int = DEFAULT_PAD_NS
) -> list[dict[str, Any]]:
    """Add ``correlated: {infrastructure: [...], serving: [...], data: [...]}`` to each span.

    *spans* are the rows of ``strata.agent.store.spans.trace_spans`` (one trace); their
    resources are read here (GPU ids may sit on the resource). Each entry summarises one
    sample series over the span's window (see ``strata.analytics.correlate``).
    """
    if not spans:
        return spans
    resources = reads.span_resources(spans[0]["trace_id"])
    records = [span_record({**s, "resource": resources.get(s["span_id"], "{}")}) for s in spans]
    hosts = correlation_hosts(correlation_targets(r) for r in records)
    lo = min(r.start_unix_nano for r in records) - pad_ns
    hi = max(r.end_unix_nano for r in records) + pad_ns
    samples = reads.samples_near(since_ns=lo, until_ns=hi, hosts=hosts)
    found = correlate_spans(records, samples, pad_ns=pad_ns)
    out = []
    for span, record in zip(spans, records, strict=True):
        by_layer: dict[str, list[dict[str, Any]]] = {str(layer): [] for layer in CORRELATED_LAYERS}
        for summary in found.get((record.trace_id, record.span_id), ()):
            by_layer[summary.layer].append(summary_json(summary))
        out.append({**span, "correlated": by_layer})
    return out
