"""Reads of layer samples: around a trace (correlation), as series (metrics API), and per
service over a time range (the cross-layer timeline).

Named functions taking a cursor; every value from a caller is a bound parameter and every
label key is validated (``strata.agent.finops.report.ATTRIBUTE_KEY``) and bound as a JSON path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import duckdb
from strata.agent.analysis.window import NOT_HISTOGRAM
from strata.agent.finops.gpu import span_record
from strata.agent.finops.report import ATTRIBUTE_KEY
from strata.agent.model import Layer, Sample, SpanRecord
from strata.analytics.correlate import (
    DEFAULT_PAD_NS,
    SignalSummary,
    correlate_spans,
    correlation_hosts,
    correlation_targets,
)

__all__ = [
    "CORRELATED_LAYERS",
    "bucketed_samples",
    "correlate_trace",
    "metric_series",
    "samples_near",
    "service_span_series",
    "service_targets",
]

CORRELATED_LAYERS: Final = (Layer.INFRASTRUCTURE, Layer.SERVING, Layer.DATA)
SAMPLE_COLUMNS: Final = (
    "time_ns, name, canonical, layer, unit, value, host, device, service, labels"
)
_COLUMN_LABELS: Final = ("host", "device", "service")


def _time(ns: int | None) -> str | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")


def _sample(row: Sequence[Any]) -> Sample:
    t, name, canonical, layer, unit, value, host, device, service, labels = row
    return Sample(name, value, unit, Layer(layer), t, json.loads(labels), canonical, host,
                  device, service)


def samples_near(
    cur: duckdb.DuckDBPyConnection, *, since_ns: int, until_ns: int, hosts: Iterable[str]
) -> list[Sample]:
    """Infrastructure, serving and data samples in ``[since_ns, until_ns]`` whose host or
    service is one of *hosts* (histogram bucket/count/sum series excluded)."""
    wanted = sorted(set(hosts))
    if not wanted:
        return []
    rows = cur.execute(
        f"SELECT {SAMPLE_COLUMNS} FROM samples "  # noqa: S608 - module constants only
        "WHERE time_ns >= $lo AND time_ns <= $hi "
        "AND layer IN ('infrastructure', 'serving', 'data') "
        f"AND (list_contains($hosts, host) OR list_contains($hosts, service)) AND {NOT_HISTOGRAM}",
        {"lo": since_ns, "hi": until_ns, "hosts": wanted},
    ).fetchall()
    return [_sample(r) for r in rows]


def summary_json(s: SignalSummary) -> dict[str, Any]:
    return {
        "signal": s.signal, "name": s.name, "unit": s.unit, "host": s.host, "device": s.device,
        "service": s.service, "labels": dict(s.labels), "count": s.count, "min": s.min,
        "mean": s.mean, "max": s.max, "last": s.last, "delta": s.delta,
        "first_time": _time(s.first_ns), "last_time": _time(s.last_ns),
    }  # fmt: skip


def correlate_trace(
    cur: duckdb.DuckDBPyConnection, spans: list[dict[str, Any]], *, pad_ns: int = DEFAULT_PAD_NS
) -> list[dict[str, Any]]:
    """Add ``correlated: {infrastructure: [...], serving: [...], data: [...]}`` to each span.

    *spans* are the rows of ``strata.agent.store.db.trace_spans`` (one trace); their resources are
    read
    here (GPU ids may sit on the resource). Each entry summarises one sample series over the
    span's window (see ``strata.analytics.correlate``).
    """
    if not spans:
        return spans
    resources = dict(
        cur.execute(
            "SELECT span_id, resource FROM spans WHERE trace_id = ?", [spans[0]["trace_id"]]
        ).fetchall()
    )
    records = [span_record({**s, "resource": resources.get(s["span_id"], "{}")}) for s in spans]
    hosts = correlation_hosts(correlation_targets(r) for r in records)
    lo = min(r.start_unix_nano for r in records) - pad_ns
    hi = max(r.end_unix_nano for r in records) + pad_ns
    samples = samples_near(cur, since_ns=lo, until_ns=hi, hosts=hosts)
    found = correlate_spans(records, samples, pad_ns=pad_ns)
    out = []
    for span, record in zip(spans, records, strict=True):
        by_layer: dict[str, list[dict[str, Any]]] = {str(layer): [] for layer in CORRELATED_LAYERS}
        for summary in found.get((record.trace_id, record.span_id), ()):
            by_layer[summary.layer].append(summary_json(summary))
        out.append({**span, "correlated": by_layer})
    return out


def _label_conditions(labels: Mapping[str, str]) -> tuple[list[str], dict[str, object]]:
    conds: list[str] = []
    params: dict[str, object] = {}
    for i, (key, value) in enumerate(sorted(labels.items())):
        params[f"lv{i}"] = value
        if key in _COLUMN_LABELS:
            conds.append(f"{key} = $lv{i}")
            continue
        if not ATTRIBUTE_KEY.fullmatch(key):
            msg = f"label filter key must be letters, digits and _.-:/ , got {key[:60]!r}"
            raise ValueError(msg)
        params[f"lk{i}"] = f'$."{key}"'
        conds.append(f"json_extract_string(labels, $lk{i}) = $lv{i}")
    return conds, params


def metric_series(
    cur: duckdb.DuckDBPyConnection,
    *,
    since_ns: int,
    until_ns: int,
    layer: str | None = None,
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
    max_series: int = 1000,
    max_points: int = 10_000,
) -> tuple[list[dict[str, Any]], bool]:
    """Stored sample series in ``[since_ns, until_ns)``, one per distinct name and labels.

    *name* matches the name as received or the canonical name. *labels* filter on ``host``,
    ``device``, ``service`` or any label key. Points are ``(time_ns, value)`` in time order;
    a series keeps its last *max_points*.

    Returns:
        (series, truncated): ``truncated`` when a limit cut series or points.

    Raises:
        ValueError: an invalid label key.
    """
    conds, params = _label_conditions(labels or {})
    params.update({"since": since_ns, "until": until_ns, "layer": layer, "name": name,
                   "limit": max_series + 1, "max_points": max_points})
    where = " AND ".join(["TRUE", *conds])
    rows = cur.execute(
        "SELECT name, canonical, layer, unit, host, device, service, labels, "  # noqa: S608
        "count(*) AS n, list(time_ns ORDER BY time_ns DESC)[1:$max_points] AS t, "
        "list(value ORDER BY time_ns DESC)[1:$max_points] AS v "
        "FROM samples WHERE time_ns >= $since AND time_ns < $until "
        "AND (CAST($layer AS VARCHAR) IS NULL OR layer = $layer) "
        "AND (CAST($name AS VARCHAR) IS NULL OR name = $name OR canonical = $name) "
        f"AND {where} GROUP BY ALL ORDER BY name, host, device, service, labels LIMIT $limit",
        params,
    ).fetchall()
    truncated = len(rows) > max_series
    series = []
    for name_, canonical, layer_, unit, host, device, service, label_json, n, ts, vs in rows[
        :max_series
    ]:
        truncated = truncated or n > max_points
        series.append({
            "name": name_, "canonical": canonical, "layer": layer_, "unit": unit,
            "host": host, "device": device, "service": service,
            "labels": json.loads(label_json),
            "points": list(zip(reversed(ts), reversed(vs), strict=True)),
        })  # fmt: skip
    return series, truncated


def service_span_series(
    cur: duckdb.DuckDBPyConnection, service: str, *, since_ns: int, until_ns: int, step_ns: int
) -> list[dict[str, Any]]:
    """Per time step, the service's request, latency, error, token and cost signals from spans.

    Requests are entry spans (no parent, or kind ``server``); model and data latencies come
    from the service's model-layer and data-layer spans.
    """
    entry = "(parent_span_id IS NULL OR kind = 'server')"
    result = cur.execute(
        f"""
        SELECT start_ns - start_ns % $step AS t,
          count(*) FILTER (WHERE {entry}) AS requests,
          quantile_cont(duration_ns, 0.5) FILTER (WHERE {entry}) / 1e9 AS latency_p50,
          quantile_cont(duration_ns, 0.95) FILTER (WHERE {entry}) / 1e9 AS latency_p95,
          avg(CASE WHEN status = 'error' THEN 1.0 ELSE 0.0 END) FILTER (WHERE {entry})
            AS error_ratio,
          quantile_cont(duration_ns, 0.95) FILTER (WHERE layer = 'model') / 1e9
            AS model_latency_p95,
          quantile_cont(duration_ns, 0.95) FILTER (WHERE layer = 'data') / 1e9
            AS retrieval_latency_p95,
          sum(input_tokens) FILTER (WHERE layer = 'model') AS input_tokens,
          sum(output_tokens) FILTER (WHERE layer = 'model') AS output_tokens,
          sum(cost_usd) AS usd, sum(energy_wh) AS energy_wh
        FROM spans WHERE service = $service AND start_ns >= $since AND start_ns < $until
        GROUP BY 1 ORDER BY 1
        """,  # noqa: S608 - module constants only
        {"step": step_ns, "service": service, "since": since_ns, "until": until_ns},
    )
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


_TARGET_KEYS: Final = (
    "gpu.uuid", "gpu.id", "server.address", "db.system.name", "db.collection.name",
    "db.namespace", "db.shard", "db.vector.shard",
)  # fmt: skip


def service_targets(
    cur: duckdb.DuckDBPyConnection, service: str, *, since_ns: int, until_ns: int
) -> list[SpanRecord]:
    """One representative span per distinct (host, GPU, server, model, collection, shard)
    the service's spans ran against in the range (only the keys correlation reads)."""
    extracts = ", ".join(
        f"json_extract(attributes, '$.\"{k}\"') AS a{i}, "
        f"json_extract(resource, '$.\"{k}\"') AS r{i}"
        for i, k in enumerate(_TARGET_KEYS)
    )
    rows = cur.execute(
        f"SELECT DISTINCT host, layer, request_model, response_model, {extracts} FROM spans "  # noqa: S608
        "WHERE service = ? AND start_ns >= ? AND start_ns < ? "
        "AND (request_model IS NOT NULL OR response_model IS NOT NULL OR layer IN ('data', "
        "'serving') OR attributes LIKE '%\"gpu.%' OR resource LIKE '%\"gpu.%' "
        "OR attributes LIKE '%\"db.%')",
        [service, since_ns, until_ns],
    ).fetchall()
    out = []
    for i, (host, layer, request_model, response_model, *values) in enumerate(rows):
        attributes = {k: json.loads(v) for k, v in zip(_TARGET_KEYS, values[0::2], strict=True)
                      if v is not None}
        resource = {k: json.loads(v) for k, v in zip(_TARGET_KEYS, values[1::2], strict=True)
                    if v is not None}
        out.append(span_record({
            "trace_id": "", "span_id": str(i), "start_ns": since_ns, "end_ns": until_ns,
            "service": service, "layer": layer, "host": host, "request_model": request_model,
            "response_model": response_model, "attributes": attributes, "resource": resource,
        }))  # fmt: skip
    return out


def bucketed_samples(
    cur: duckdb.DuckDBPyConnection,
    *,
    since_ns: int,
    until_ns: int,
    step_ns: int,
    hosts: Iterable[str],
) -> list[tuple[Sample, float, float]]:
    """Per step and series, the mean as a Sample (time = step start) with (max, increase).

    ``increase`` is max - min within the step: the growth of a cumulative counter.
    """
    wanted = sorted(set(hosts))
    if not wanted:
        return []
    rows = cur.execute(
        "SELECT time_ns - time_ns % $step AS t, name, canonical, layer, unit, avg(value), "  # noqa: S608
        "host, device, service, labels, max(value), max(value) - min(value) FROM samples "
        "WHERE time_ns >= $since AND time_ns < $until "
        "AND layer IN ('infrastructure', 'serving', 'data') "
        f"AND (list_contains($hosts, host) OR list_contains($hosts, service)) AND {NOT_HISTOGRAM} "
        "GROUP BY ALL",
        {"step": step_ns, "since": since_ns, "until": until_ns, "hosts": wanted},
    ).fetchall()
    return [(_sample(r[:10]), float(r[10]), float(r[11])) for r in rows]
