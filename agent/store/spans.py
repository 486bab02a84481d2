"""Reads and analysis writes of the ``spans`` table (ingest writes are ``DuckDBStore.write_batch``).

Named functions taking a cursor; every value from a caller is a bound parameter. Series reads
return raw aggregates (columns or rows): the callers (``analysis.window``, the API, the
``/metrics`` collector) shape them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

import duckdb
import numpy as np
import pyarrow as pa
from strata.agent.model import Layer, SpanRecord
from strata.agent.store import first_row
from strata.agent.store.columns import ONE_TRACE_SQL, CostColumns
from strata.agent.units import HOUR_NS

__all__ = [
    "GPU_CANDIDATE_COLUMNS",
    "TARGET_KEYS",
    "TRACE_SPAN_COLUMNS",
    "busiest_services",
    "duration_quantiles",
    "event_time_range",
    "gpu_candidates",
    "gpu_received_range",
    "list_traces",
    "model_bucket_usage",
    "service_dependencies",
    "service_span_series",
    "service_targets",
    "span_bucket_stats",
    "span_record",
    "span_resources",
    "spans_received_between",
    "trace_spans",
    "update_span_costs",
    "usage_received_after",
]

TRACE_SPAN_COLUMNS: Final = (
    "trace_id", "span_id", "parent_span_id", "name", "kind", "start_ns", "end_ns", "duration_ns",
    "status", "service", "service_version", "layer", "operation", "provider", "request_model",
    "response_model", "input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens",
    "error_type", "host", "team", "cost_usd", "cost_source", "energy_wh", "energy_source",
    "co2e_g", "attributes",
)  # fmt: skip
# What may run on a GPU, in SQL: a GPU key, or a model span that names a serving address or
# runs on one of the GPU hosts ($hosts, lowercased). Callers confirm with
# ``analytics.topology.Topology.resolve``.
_MAY_RUN_ON_GPU: Final = """(attributes LIKE '%"gpu.%' OR resource LIKE '%"gpu.%'
    OR ((request_model IS NOT NULL OR response_model IS NOT NULL)
        AND (list_contains($hosts, lower(host)) OR attributes LIKE '%"server.address"%'
             OR attributes LIKE '%"net.peer.name"%' OR attributes LIKE '%"gen_ai.openai.api_base"%'
             OR attributes LIKE '%"url.full"%' OR attributes LIKE '%"http.url"%')))"""
_ADDRESS: Final = """lower(coalesce(json_extract_string(attributes, '$."server.address"'),
                                json_extract_string(attributes, '$."net.peer.name"')))"""
# The same, narrowed by the addresses a GPU can be reached by ($addresses: whole names or
# first DNS labels): a hosted API's address is dropped here, not in Python.
_SERVES_ON_GPU: Final = f"""(attributes LIKE '%"gpu.%' OR resource LIKE '%"gpu.%'
    OR ((request_model IS NOT NULL OR response_model IS NOT NULL)
        AND (list_contains($hosts, lower(host))
             OR (attributes LIKE '%"server.address"%' OR attributes LIKE '%"net.peer.name"%')
                AND (list_contains($addresses, {_ADDRESS})
                     OR list_contains($addresses, split_part({_ADDRESS}, '.', 1)))
             OR attributes NOT LIKE '%"server.address"%'
                AND attributes NOT LIKE '%"net.peer.name"%'
                AND (attributes LIKE '%"gen_ai.openai.api_base"%'
                     OR attributes LIKE '%"url.full"%' OR attributes LIKE '%"http.url"%'))))"""
_COST_UPDATE_SCHEMA: Final = pa.schema([
    ("trace_id", pa.string()), ("span_id", pa.string()), ("cost_usd", pa.float64()),
    ("cost_source", pa.string()), ("energy_wh", pa.float64()), ("energy_source", pa.string()),
    ("co2e_g", pa.float64()),
])
# Window groups: model spans by service x operation whatever the model (a switch to another
# model is a change of the series, not a new one), other layers also by span name.
_GROUP_KEY: Final = """service || $sep || layer || $sep || operation || $sep
                       || CASE WHEN layer = 'model' THEN '' ELSE name END"""
# An exception log of a span counts as the span's failure (logs are written while it runs,
# so they fall between its start and, at the latest, this long after the window's end).
_FAILED: Final = "(status = 'error' OR log_span IS NOT NULL)"
_LOG_SLACK_NS: Final = HOUR_NS
TARGET_KEYS: Final = (
    "gpu.uuid", "gpu.id", "server.address", "db.system.name", "db.collection.name",
    "db.namespace", "db.shard", "db.vector.shard",
)  # fmt: skip


def _dicts(result: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in result.description or ()]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def span_record(row: dict[str, Any]) -> SpanRecord:
    """A stored span row (attributes/resource as JSON text or dicts) as a SpanRecord."""
    attributes = row.get("attributes") or {}
    resource = row.get("resource") or {}
    return SpanRecord(
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        parent_span_id=row.get("parent_span_id"),
        name=row.get("name", ""),
        kind=row.get("kind", "internal"),
        start_unix_nano=int(row["start_ns"]),
        end_unix_nano=int(row["end_ns"]),
        status=row.get("status", "unset"),
        service=row.get("service", ""),
        layer=Layer(row.get("layer", "orchestration")),
        service_version=row.get("service_version"),
        operation=row.get("operation"),
        provider=row.get("provider"),
        request_model=row.get("request_model"),
        response_model=row.get("response_model"),
        input_tokens=row.get("input_tokens"),
        output_tokens=row.get("output_tokens"),
        cache_read_tokens=row.get("cache_read_tokens"),
        reasoning_tokens=row.get("reasoning_tokens"),
        error_type=row.get("error_type"),
        host=row.get("host"),
        team=row.get("team"),
        attributes=json.loads(attributes) if isinstance(attributes, str) else attributes,
        resource=json.loads(resource) if isinstance(resource, str) else resource,
    )


# -- traces (API) -----------------------------------------------------------------------------


def list_traces(
    cur: duckdb.DuckDBPyConnection,
    *,
    service: str | None = None,
    model: str | None = None,
    status: str | None = None,
    min_duration_ns: int | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Trace summaries, newest first, for traces with a span matching every filter."""
    return _dicts(cur.execute(
        """
        WITH matched AS (
            SELECT DISTINCT trace_id FROM spans
            WHERE (CAST(? AS VARCHAR) IS NULL OR service = ?)
              AND (CAST(? AS VARCHAR) IS NULL OR request_model = ? OR response_model = ?)
              AND (CAST(? AS VARCHAR) IS NULL OR status = ?)
              AND (CAST(? AS BIGINT) IS NULL OR start_ns >= ?)
              AND (CAST(? AS BIGINT) IS NULL OR start_ns < ?)
        )
        SELECT trace_id, min(start_ns) AS start_ns, max(end_ns) - min(start_ns) AS duration_ns,
               count(*) AS spans, arg_min(name, start_ns) AS root_name,
               arg_min(service, start_ns) AS service, bool_or(status = 'error') AS has_error,
               sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
               sum(cost_usd) AS cost_usd, sum(energy_wh) AS energy_wh
        FROM spans WHERE trace_id IN (SELECT trace_id FROM matched)
        GROUP BY trace_id
        HAVING (CAST(? AS BIGINT) IS NULL OR max(end_ns) - min(start_ns) >= ?)
        ORDER BY start_ns DESC
        LIMIT ?
        """,
        [service, service, model, model, model, status, status, since_ns, since_ns, until_ns,
         until_ns, min_duration_ns, min_duration_ns, limit],
    ))


def trace_spans(cur: duckdb.DuckDBPyConnection, trace_id: str) -> list[dict[str, Any]]:
    """Every span of one trace, in start order, attributes decoded."""
    rows = cur.execute(
        f"SELECT {', '.join(TRACE_SPAN_COLUMNS)} FROM spans "  # noqa: S608 - fixed column list
        f"WHERE {ONE_TRACE_SQL} ORDER BY start_ns, span_id",
        [trace_id, trace_id],
    ).fetchall()
    spans = []
    for row in rows:
        span = dict(zip(TRACE_SPAN_COLUMNS, row, strict=True))
        span["attributes"] = json.loads(span["attributes"])
        spans.append(span)
    return spans


def span_resources(cur: duckdb.DuckDBPyConnection, trace_id: str) -> dict[str, str]:
    """span_id -> resource (JSON text) of every span of one trace."""
    rows = cur.execute(f"SELECT span_id, resource FROM spans WHERE {ONE_TRACE_SQL}",  # noqa: S608
                       [trace_id, trace_id])
    return dict(rows.fetchall())


# -- per-service timeline (API) ---------------------------------------------------------------


def service_span_series(
    cur: duckdb.DuckDBPyConnection, service: str, *, since_ns: int, until_ns: int, step_ns: int
) -> list[dict[str, Any]]:
    """Per time step, the service's request, latency, error, token and cost signals from spans.

    Requests are entry spans (no parent, or kind ``server``); model and data latencies come
    from the service's model-layer and data-layer spans.
    """
    entry = "(parent_span_id IS NULL OR kind = 'server')"
    return _dicts(cur.execute(
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
    ))


def service_targets(
    cur: duckdb.DuckDBPyConnection, service: str, *, since_ns: int, until_ns: int
) -> list[SpanRecord]:
    """One representative span per distinct (host, GPU, server, model, collection, shard)
    the service's spans ran against in the range (only the keys correlation reads)."""
    extracts = ", ".join(
        f"json_extract(attributes, '$.\"{k}\"') AS a{i}, "
        f"json_extract(resource, '$.\"{k}\"') AS r{i}"
        for i, k in enumerate(TARGET_KEYS)
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
        attributes = {k: json.loads(v) for k, v in zip(TARGET_KEYS, values[0::2], strict=True)
                      if v is not None}
        resource = {k: json.loads(v) for k, v in zip(TARGET_KEYS, values[1::2], strict=True)
                    if v is not None}
        out.append(span_record({
            "trace_id": "", "span_id": str(i), "start_ns": since_ns, "end_ns": until_ns,
            "service": service, "layer": layer, "host": host, "request_model": request_model,
            "response_model": response_model, "attributes": attributes, "resource": resource,
        }))  # fmt: skip
    return out


# -- detector window (analysis.window) --------------------------------------------------------


def span_bucket_stats(
    cur: duckdb.DuckDBPyConnection, *, start_ns: int, end_ns: int, bucket_ns: int, sep: str
) -> dict[str, np.ndarray]:
    """Per (bucket, group) request statistics of the spans with an operation, as columns.

    Columns: ``bucket``, ``gkey`` (service, layer, operation, name joined by *sep*; name
    empty for the model layer), ``n``, ``errors``, ``p50``/``p95`` (seconds, successful
    requests), ``in_tok``/``out_tok``/``n_tok`` (spans reporting output tokens), ``cost`` and
    ``n_cost`` (stored costs). A span failed when its status is ``error`` or an exception
    log record (not a span event) names it.
    """
    return cur.execute(
        f"""
        SELECT start_ns // $b * $b AS bucket, {_GROUP_KEY} AS gkey,
               count(*) AS n,
               count(*) FILTER (WHERE {_FAILED}) AS errors,
               quantile_cont(duration_ns, 0.5) FILTER (WHERE NOT {_FAILED}) / 1e9
                 AS p50,
               quantile_cont(duration_ns, 0.95) FILTER (WHERE NOT {_FAILED}) / 1e9
                 AS p95,
               coalesce(sum(input_tokens) FILTER (WHERE output_tokens IS NOT NULL), 0)
                 AS in_tok,
               coalesce(sum(output_tokens), 0) AS out_tok,
               count(output_tokens) AS n_tok,
               sum(cost_usd) AS cost,
               count(cost_usd) AS n_cost
        FROM spans LEFT JOIN (
            SELECT DISTINCT trace_id AS log_trace, span_id AS log_span FROM logs
            WHERE error_type IS NOT NULL AND NOT span_event AND span_id IS NOT NULL
              AND time_ns >= $start AND time_ns < $end + $slack
        ) ON trace_id = log_trace AND span_id = log_span
        WHERE start_ns >= $start AND start_ns < $end AND operation IS NOT NULL
        GROUP BY ALL
        """,  # noqa: S608 - the interpolated text is a fixed expression
        {"b": bucket_ns, "sep": sep, "start": start_ns, "end": end_ns,
         "slack": _LOG_SLACK_NS},
    ).fetchnumpy()


def model_bucket_usage(
    cur: duckdb.DuckDBPyConnection, *, start_ns: int, end_ns: int, bucket_ns: int, sep: str
) -> dict[str, np.ndarray]:
    """Per (bucket, group, model, provider), token sums of model spans reporting output tokens.

    Columns ``bucket, gkey, model, provider, in_tok, out_tok, n_tok`` (spans); *gkey* as
    in ``span_bucket_stats``, model and provider ``''`` when absent. Unordered.
    """
    return cur.execute(
        f"""
        SELECT start_ns // $b * $b AS bucket, {_GROUP_KEY} AS gkey,
               coalesce(response_model, request_model, '') AS model,
               coalesce(provider, '') AS provider,
               coalesce(sum(input_tokens), 0) AS in_tok,
               coalesce(sum(output_tokens), 0) AS out_tok, count(*) AS n_tok
        FROM spans
        WHERE start_ns >= $start AND start_ns < $end AND operation IS NOT NULL
          AND layer = 'model' AND output_tokens IS NOT NULL
        GROUP BY ALL
        """,  # noqa: S608 - the interpolated text is a fixed expression
        {"b": bucket_ns, "sep": sep, "start": start_ns, "end": end_ns},
    ).fetchnumpy()


def service_dependencies(
    cur: duckdb.DuckDBPyConnection, *, start_ns: int, end_ns: int
) -> list[tuple[str, str]]:
    """Distinct (service, dependency), sorted: the hosts of its model and serving spans and
    the ``server.address`` its model, serving and data spans called."""
    return cur.execute(
        """
        SELECT DISTINCT service, dep FROM (
            SELECT service, host AS dep FROM spans
            WHERE layer IN ('model', 'serving') AND start_ns >= $start
              AND start_ns < $end
            UNION ALL
            SELECT service, json_extract_string(attributes, '$."server.address"')
            FROM spans WHERE start_ns >= $start AND start_ns < $end
              AND layer IN ('model', 'serving', 'data')
        ) WHERE dep IS NOT NULL ORDER BY ALL
        """,
        {"start": start_ns, "end": end_ns},
    ).fetchall()


def event_time_range(cur: duckdb.DuckDBPyConnection) -> tuple[int, int] | None:
    """(earliest, latest) event time stored in spans and samples, or None when empty."""
    row = first_row(cur.execute(
        "SELECT min(t0), max(t1) FROM ("
        "SELECT min(start_ns) AS t0, max(start_ns) AS t1 FROM spans "
        "UNION ALL SELECT min(time_ns), max(time_ns) FROM samples)"
    ))
    if row is None or row[0] is None:
        return None
    return int(row[0]), int(row[1])


# -- GPU pass (finops.gpu) --------------------------------------------------------------------


GPU_CANDIDATE_COLUMNS: Final = (
    "trace_id", "span_id", "start_ns", "end_ns", "input_tokens", "output_tokens", "has_model",
    "host", "address", "port", "url", "gpu_uuid", "gpu_id", "resource_gpu_uuid",
    "resource_gpu_id", "resource_host", "instance",
)  # fmt: skip
# Paths read in one parse per document: (attribute paths, resource paths).
_ATTRIBUTE_PATHS: Final = [f'$."{k}"' for k in (
    "server.address", "net.peer.name", "server.port", "net.peer.port", "gen_ai.openai.api_base",
    "url.full", "http.url")]
_RESOURCE_PATHS: Final = [f'$."{k}"' for k in (
    "host.name", "service.instance.id", "k8s.pod.name")]
_GPU_PATHS: Final = ['$."gpu.uuid"', '$."gpu.id"']


def gpu_candidates(
    cur: duckdb.DuckDBPyConnection, lo_ns: int, hi_ns: int, *, max_span_ns: int,
    hosts: Sequence[str] = (), addresses: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """Spans that may run on a GPU (a GPU key; a model span on one of *hosts*, or whose
    ``server.address`` or its first DNS label is one of *addresses*, or that names only an
    API base URL) overlapping ``[lo_ns, hi_ns)``, as rows in ``GPU_CANDIDATE_COLUMNS``
    order: only the fields the serving topology reads (the GPU ids as JSON text, the others
    as text), so no attribute map is built. Spans longer than *max_span_ns* that started
    before the range are not looked for."""
    rows = cur.execute(
        "SELECT trace_id, span_id, start_ns, end_ns, input_tokens, output_tokens, "  # noqa: S608 - module SQL
        "request_model IS NOT NULL OR response_model IS NOT NULL, host, "
        "json_extract_string(attributes, $apaths), json_extract_string(resource, $rpaths), "
        "CASE WHEN attributes LIKE '%\"gpu.%' THEN json_extract(attributes, $gpaths) END, "
        "CASE WHEN resource LIKE '%\"gpu.%' THEN json_extract(resource, $gpaths) END "
        "FROM spans WHERE start_ns >= $lo AND start_ns < $hi AND end_ns > $end "
        f"AND {_SERVES_ON_GPU}",
        {"lo": lo_ns - max_span_ns, "hi": hi_ns, "end": lo_ns,
         "hosts": [h.lower() for h in hosts], "addresses": [a.lower() for a in addresses],
         "apaths": _ATTRIBUTE_PATHS, "rpaths": _RESOURCE_PATHS, "gpaths": _GPU_PATHS},
    ).fetchall()
    out = []
    for *head, (addr, peer, port, peer_port, base, full, url), (host, inst, pod), gpu, rgpu in rows:
        gpu, rgpu = gpu or (None, None), rgpu or (None, None)
        out.append((*head, addr or peer, port or peer_port, base or full or url, *gpu, *rgpu,
                    host, inst or pod))
    return out


def gpu_received_range(
    cur: duckdb.DuckDBPyConnection, *, received_since_ns: int, energy_signal: str,
    hosts: Sequence[str] = (),
) -> tuple[int, int] | None:
    """(min, max) event time of spans that may run on a GPU (as ``gpu_candidates``) and
    *energy_signal* samples received at or after *received_since_ns*, or None when none
    arrived."""
    row = first_row(cur.execute(
        "SELECT min(lo), max(hi) FROM ("  # noqa: S608 - module constant only
        "  SELECT min(start_ns) AS lo, max(start_ns) AS hi FROM spans WHERE received_ns >= $r "
        f"    AND {_MAY_RUN_ON_GPU}"
        "  UNION ALL"
        "  SELECT min(time_ns), max(time_ns) FROM samples WHERE received_ns >= $r "
        "    AND canonical = $signal"
        ")",
        {"r": received_since_ns, "signal": energy_signal, "hosts": [h.lower() for h in hosts]},
    ))
    if row is None or row[0] is None:
        return None
    return int(row[0]), int(row[1])


def update_span_costs(
    cur: duckdb.DuckDBPyConnection, rows: Sequence[tuple[Any, ...]], *, since_ns: int,
    until_ns: int,
) -> None:
    """Set the cost columns of spans starting in ``[since_ns, until_ns)`` (inside the caller's
    transaction). *rows*: ``(trace_id, span_id, cost_usd, cost_source, energy_wh,
    energy_source, co2e_g)``."""
    if not rows:
        return
    columns = zip(_COST_UPDATE_SCHEMA.names, zip(*rows, strict=True), strict=True)
    table = pa.Table.from_pydict({n: list(c) for n, c in columns}, schema=_COST_UPDATE_SCHEMA)
    cur.register("_gpu_costs", table)
    cur.execute(
        "UPDATE spans SET cost_usd = u.cost_usd, cost_source = u.cost_source, "
        "energy_wh = u.energy_wh, energy_source = u.energy_source, co2e_g = u.co2e_g "
        "FROM _gpu_costs u WHERE spans.trace_id = u.trace_id "
        "AND spans.span_id = u.span_id AND spans.start_ns >= ? AND spans.start_ns < ?",
        [since_ns, until_ns],
    )
    cur.unregister("_gpu_costs")


def spans_received_between(
    cur: duckdb.DuckDBPyConnection, after_ns: int, until_ns: int, *, limit: int
) -> list[tuple[SpanRecord, CostColumns, int]]:
    """The first spans naming a model or a GPU received in ``(after_ns, until_ns]``, oldest
    receipt first, each as a record with its stored cost columns and its ``received_ns``:
    about *limit* of them, and whole commits only (all the spans of the last
    ``received_ns`` are in), so a caller pages on by the last ``received_ns``.
    ``finops.held_spans`` reads them to forward after the GPU pass."""
    query = (f"SELECT {', '.join(TRACE_SPAN_COLUMNS)}, resource, received_ns FROM spans "  # noqa: S608
             "WHERE received_ns > ? AND received_ns <= ? AND (request_model IS NOT NULL "
             "OR response_model IS NOT NULL OR attributes LIKE '%\"gpu.%' "
             "OR resource LIKE '%\"gpu.%') ORDER BY received_ns")
    rows = _dicts(cur.execute(query + " LIMIT ?", [after_ns, until_ns, limit]))
    if len(rows) == limit:  # the last commit may go on: read it whole
        last = int(rows[-1]["received_ns"])
        rows = [r for r in rows if r["received_ns"] != last]
        rows += _dicts(cur.execute(query, [last - 1, last]))
    return [(span_record(row), (row["cost_usd"], row["cost_source"], row["energy_wh"],
                                row["energy_source"], row["co2e_g"]), int(row["received_ns"]))
            for row in rows]


# -- /metrics (exporters.prometheus) ----------------------------------------------------------


def busiest_services(
    cur: duckdb.DuckDBPyConnection, *, received_since_ns: int, limit: int
) -> list[str]:
    """Services by spans received since *received_since_ns*, most first (ties by name)."""
    rows = cur.execute(
        "SELECT service, count(*) FROM spans WHERE received_ns >= ? GROUP BY service "
        "ORDER BY 2 DESC, 1 LIMIT ?",
        [received_since_ns, limit],
    ).fetchall()
    return [row[0] for row in rows]


def duration_quantiles(
    cur: duckdb.DuckDBPyConnection, *, received_since_ns: int, services: Sequence[str],
    other: str, quantiles: Sequence[float],
) -> list[tuple[str, list[float]]]:
    """Per service in *services* (the rest together as *other*), the *quantiles* of the
    duration (ns) of spans received since *received_since_ns*; sorted by service."""
    return cur.execute(
        "SELECT CASE WHEN list_contains(?, service) THEN service ELSE ? END AS svc, "
        "quantile_cont(duration_ns, ?) FROM spans WHERE received_ns >= ? GROUP BY svc "
        "ORDER BY svc",
        [list(services), other, list(quantiles), received_since_ns],
    ).fetchall()


def usage_received_after(
    cur: duckdb.DuckDBPyConnection, received_after_ns: int
) -> list[tuple[Any, ...]]:
    """Per (service, model) of spans received after *received_after_ns*, most spans first:
    ``(service, model or '', spans, errors, input_tokens, output_tokens, cost_usd,
    energy_wh, co2e_g, duration_s, newest received_ns)``; sums over nothing are 0."""
    return cur.execute(
        "SELECT service, coalesce(response_model, request_model, ''), count(*), "
        "count(*) FILTER (WHERE status = 'error'), coalesce(sum(input_tokens), 0), "
        "coalesce(sum(output_tokens), 0), coalesce(sum(cost_usd), 0), "
        "coalesce(sum(energy_wh), 0), coalesce(sum(co2e_g), 0), sum(duration_ns) / 1e9, "
        "max(received_ns) "
        "FROM spans WHERE received_ns > ? GROUP BY ALL ORDER BY 3 DESC",
        [received_after_ns],
    ).fetchall()
