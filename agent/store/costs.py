"""Cost reads and the hourly cost rollup: the ``cost_hourly`` and ``gpu_energy`` tables, and
the span and sample aggregates behind the FinOps views.

``cost_report`` groups cost, tokens, energy and carbon by an attribute and buckets them in
time. Its ``group_by`` is either one of the promoted columns in ``GROUP_COLUMNS`` (an
allowlist; the SQL text comes from this module, never from the caller), ``user`` (the
``user.id`` or ``enduser.id`` attribute), or any span/resource attribute key matching
``ATTRIBUTE_KEY``, which reaches DuckDB only as a bound JSON-path parameter. Filters work the
same way and their values are always bound. So no caller-supplied text is ever interpolated
into SQL.

What counts:
- a *request* is a span that names a model or carries a cost or an energy figure (workflow
  and tool spans are not requests, so a trace is not counted once per step);
- ``unpriced_requests`` are requests whose cost is unknown (``cost_usd`` NULL: unknown model,
  self-hosted model with no GPU price, missing token counts). They are reported, never
  priced at 0;
- tokens are summed over requests only (parent spans that repeat their children's totals
  would count them twice).

Rollup: ``cost_hourly`` holds the same aggregates per hour x (service, team, model, provider,
host), rebuilt hour by hour by ``rebuild_rollup_hours`` (``strata.agent.finops.report`` decides
which hours and moves the watermark). A query whose group and filters are rollup dimensions
and whose bucket is a whole number of hours reads full hours from the rollup, the partial
edge hours from ``spans``, and adds the spans received after the rollup's watermark, so
answers never wait for the next refresh. The rollup only ever holds spans received at or
before the watermark, so no span is counted twice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import duckdb
import pyarrow as pa
from strata.agent.store import first_row, meta_value, set_meta
from strata.agent.units import HOUR_NS

__all__ = [
    "ATTRIBUTE_KEY",
    "COVERAGE_COLUMNS",
    "GROUP_COLUMNS",
    "HOUR_NS",
    "MEASURES",
    "ROLLUP_DIMENSIONS",
    "USER_KEYS",
    "GroupSpec",
    "cost_report",
    "coverage_by_service",
    "gpu_energy_summary",
    "gpu_hourly_usage",
    "group_spec",
    "model_usage",
    "rebuild_rollup_hours",
    "rollup_watermark",
    "set_rollup_watermark",
    "spans_received_since",
    "unknown_energy_groups",
    "upsert_gpu_energy",
]

ATTRIBUTE_KEY: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-:/]{0,127}")
GROUP_COLUMNS: Final[Mapping[str, str]] = {
    "team": "team",
    "service": "service",
    "model": "coalesce(response_model, request_model)",
    "provider": "provider",
    "host": "host",
    "operation": "operation",
    "service_version": "service_version",
    "layer": "layer",
}
ROLLUP_DIMENSIONS: Final = ("service", "team", "model", "provider", "host")
USER_KEYS: Final = ("user.id", "enduser.id")
ROLLUP_WATERMARK_KEY: Final = "cost_rollup_received_ns"

_REQUEST = (
    "(request_model IS NOT NULL OR response_model IS NOT NULL OR cost_usd IS NOT NULL "
    "OR energy_wh IS NOT NULL)"
)
# Partial aggregates over spans; the rollup stores exactly these columns.
_SPAN_AGGREGATES = f"""
    count(*) FILTER (WHERE {_REQUEST}) AS requests,
    count(cost_usd) AS priced_requests,
    sum(input_tokens) FILTER (WHERE {_REQUEST}) AS input_tokens,
    sum(output_tokens) FILTER (WHERE {_REQUEST}) AS output_tokens,
    sum(cost_usd) AS usd,
    sum(energy_wh) AS energy_wh,
    sum(energy_wh) FILTER (WHERE energy_source = 'measured') AS energy_wh_measured,
    sum(energy_wh) FILTER (WHERE energy_source = 'estimated') AS energy_wh_estimated,
    count(energy_wh) AS energy_requests,
    sum(co2e_g) AS co2e_g,
    count(co2e_g) AS co2e_requests,
    sum(energy_wh) FILTER (WHERE input_tokens IS NOT NULL AND output_tokens IS NOT NULL)
        AS token_energy_wh,
    sum(input_tokens + output_tokens) FILTER (WHERE energy_wh IS NOT NULL)
        AS token_energy_tokens
"""
MEASURES: Final = (
    "requests", "priced_requests", "input_tokens", "output_tokens", "usd", "energy_wh",
    "energy_wh_measured", "energy_wh_estimated", "energy_requests", "co2e_g", "co2e_requests",
    "token_energy_wh", "token_energy_tokens",
)  # fmt: skip
_SUM_MEASURES = ", ".join(f"sum({m}) AS {m}" for m in MEASURES)
_INTEGER_MEASURES = frozenset(
    {"requests", "priced_requests", "input_tokens", "output_tokens", "energy_requests",
     "co2e_requests", "token_energy_tokens"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """A validated grouping or filter key: SQL over ``spans`` (and the rollup) + bound params."""

    key: str
    span_sql: str  # expression over a spans row
    rollup_sql: str | None  # expression over a cost_hourly row, None when not a dimension
    params: Mapping[str, object]


def group_spec(key: str, *, slot: str = "g") -> GroupSpec:
    """Resolve a ``group_by`` or filter key; *slot* names its bound parameters.

    Raises:
        ValueError: *key* is neither an allowlisted column, ``user``, nor an attribute key
            matching ``ATTRIBUTE_KEY``.
    """
    if key in GROUP_COLUMNS:
        rollup = key if key in ROLLUP_DIMENSIONS else None
        return GroupSpec(key, GROUP_COLUMNS[key], rollup, {})
    keys = USER_KEYS if key == "user" else (key,)
    if not all(ATTRIBUTE_KEY.fullmatch(k) for k in keys):
        msg = (
            f"group_by/filter must be one of {', '.join(GROUP_COLUMNS)}, user, or an attribute"
            f" key of letters, digits and _.-:/ (at most 128), got {key[:60]!r}"
        )
        raise ValueError(msg)
    parts = []
    params: dict[str, object] = {}
    for i, k in enumerate(keys):
        name = f"{slot}{i}"
        params[name] = f'$."{k}"'  # the key is validated above; it is still bound, not pasted
        parts.append(f"json_extract_string(attributes, ${name})")
        parts.append(f"json_extract_string(resource, ${name})")
    return GroupSpec(key, f"coalesce({', '.join(parts)})", None, params)


def _filters(
    filters: Mapping[str, str],
) -> tuple[list[str], list[str | None], dict[str, object]]:
    """(span conditions, rollup conditions or None per filter, params) for equality filters."""
    span_conds: list[str] = []
    rollup_conds: list[str | None] = []
    params: dict[str, object] = {}
    for i, (key, value) in enumerate(sorted(filters.items())):
        spec = group_spec(key, slot=f"fk{i}_")
        params.update(spec.params)
        params[f"fv{i}"] = value
        span_conds.append(f"{spec.span_sql} = $fv{i}")
        rollup_conds.append(None if spec.rollup_sql is None else f"{spec.rollup_sql} = $fv{i}")
    return span_conds, rollup_conds, params


def cost_report(
    cur: duckdb.DuckDBPyConnection,
    *,
    group_by: str,
    since_ns: int,
    until_ns: int,
    bucket_ns: int | None = None,
    filters: Mapping[str, str] | None = None,
    rollup: bool = True,
) -> list[dict[str, Any]]:
    """Cost, tokens, energy and carbon per (time bucket, group) over ``[since_ns, until_ns)``.

    ``rollup=False`` reads only the spans table (same result; for checks and benchmarks).

    Spans are placed by start time. Buckets are aligned to the Unix epoch; without
    *bucket_ns* there is one bucket, whose ``bucket_ns`` is *since_ns*.

    Returns:
        Rows ``{"bucket_ns", "group", <measures>}`` ordered by bucket then group, where the
        measures are the partial sums (``requests``, ``priced_requests``, ``input_tokens``,
        ``output_tokens``, ``usd``, ``energy_wh``, ``energy_wh_measured``,
        ``energy_wh_estimated``, ``energy_requests``, ``co2e_g``, ``co2e_requests``,
        ``token_energy_wh``, ``token_energy_tokens``). Sums over nothing are None.

    Raises:
        ValueError: an invalid group or filter key, or a bucket that is not positive.
    """
    if bucket_ns is not None and bucket_ns <= 0:
        msg = f"bucket must be positive, got {bucket_ns} ns"
        raise ValueError(msg)
    group = group_spec(group_by)
    span_conds, rollup_conds, params = _filters(filters or {})
    params.update(group.params)
    params.update({"since": since_ns, "until": until_ns})
    if bucket_ns is None:
        span_bucket = rollup_bucket = "$since"
    else:
        params["bucket"] = bucket_ns
        span_bucket = "start_ns - start_ns % $bucket"
        rollup_bucket = "hour_ns - hour_ns % $bucket"
    span_where = " AND ".join(["TRUE", *span_conds])
    full_lo = -(-since_ns // HOUR_NS) * HOUR_NS
    full_hi = until_ns // HOUR_NS * HOUR_NS
    use_rollup = (
        rollup
        and group.rollup_sql is not None
        and all(c is not None for c in rollup_conds)
        and (bucket_ns is None or bucket_ns % HOUR_NS == 0)
        and full_lo < full_hi
    )

    def span_part(where: str) -> str:
        return (
            f"SELECT {span_bucket} AS bucket_ns, {group.span_sql} AS grp, {_SPAN_AGGREGATES} "  # noqa: S608 - module SQL only
            f"FROM spans WHERE {where} AND {span_where} GROUP BY ALL"
        )

    if not use_rollup:
        sql = span_part("start_ns >= $since AND start_ns < $until")
    else:
        params.update({"lo": full_lo, "hi": full_hi, "wm": rollup_watermark(cur)})
        rollup_where = " AND ".join(["TRUE", *(c for c in rollup_conds if c is not None)])
        parts = [
            span_part("start_ns >= $since AND start_ns < $lo"),
            span_part("start_ns >= $hi AND start_ns < $until"),
            span_part("received_ns > $wm AND start_ns >= $lo AND start_ns < $hi"),
            f"SELECT {rollup_bucket} AS bucket_ns, {group.rollup_sql} AS grp, {_SUM_MEASURES} "  # noqa: S608
            f"FROM cost_hourly WHERE hour_ns >= $lo AND hour_ns < $hi AND {rollup_where} "
            "GROUP BY ALL",
        ]
        sql = " UNION ALL ".join(f"({p})" for p in parts)
    result = cur.execute(
        f"SELECT bucket_ns, grp, {_SUM_MEASURES} FROM ({sql}) GROUP BY ALL "  # noqa: S608 - module SQL only
        "ORDER BY bucket_ns, grp NULLS LAST",
        params,
    )
    names = ["bucket_ns", "group", *MEASURES]
    rows = []
    for row in result.fetchall():
        item = dict(zip(names, row, strict=True))
        for m in _INTEGER_MEASURES:
            item[m] = 0 if item[m] is None and m.endswith("requests") else _int(item[m])
        rows.append(item)
    return rows


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


# -- the rollup ---------------------------------------------------------------------------------


def rollup_watermark(cur: duckdb.DuckDBPyConnection) -> int:
    """The received_ns up to which spans are in ``cost_hourly`` (-1: never refreshed)."""
    value = meta_value(cur, ROLLUP_WATERMARK_KEY)
    return -1 if value is None else int(value)


def set_rollup_watermark(cur: duckdb.DuckDBPyConnection, received_ns: int) -> None:
    set_meta(cur, ROLLUP_WATERMARK_KEY, str(received_ns))


def spans_received_since(
    cur: duckdb.DuckDBPyConnection, received_since_ns: int
) -> tuple[int | None, set[int]]:
    """(latest received_ns, hour starts of their start times) of the spans received at or
    after *received_since_ns*; (None, empty) when there are none."""
    row = first_row(cur.execute(
        "SELECT max(received_ns) FROM spans WHERE received_ns >= ?", [received_since_ns]
    ))
    hours = cur.execute(
        f"SELECT DISTINCT start_ns - start_ns % {HOUR_NS} FROM spans "  # noqa: S608 - constant
        "WHERE received_ns >= ?",
        [received_since_ns],
    ).fetchall()
    latest = None if row is None or row[0] is None else int(row[0])
    return latest, {int(h[0]) for h in hours}


def rebuild_rollup_hours(
    cur: duckdb.DuckDBPyConnection, hours: Sequence[int], *, watermark_ns: int
) -> None:
    """Replace the rollup rows of *hours* (hour starts, ns) by the aggregates of the spans
    that start in them and were received at or before *watermark_ns*."""
    if not hours:
        return
    wanted = sorted(hours)
    cur.execute("DELETE FROM cost_hourly WHERE list_contains($hours, hour_ns)", {"hours": wanted})
    cur.execute(
        f"INSERT INTO cost_hourly SELECT start_ns - start_ns % {HOUR_NS} AS hour_ns, "  # noqa: S608 - module SQL
        f"service, team, {GROUP_COLUMNS['model']} AS model, provider, host, {_SPAN_AGGREGATES} "
        "FROM spans WHERE start_ns >= $lo AND start_ns < $hi AND received_ns <= $wm "
        f"AND list_contains($hours, start_ns - start_ns % {HOUR_NS}) GROUP BY ALL",
        {"hours": wanted, "lo": wanted[0], "hi": wanted[-1] + HOUR_NS, "wm": watermark_ns},
    )


# -- GPU energy and rightsizing -----------------------------------------------------------------

_GPU_ENERGY_SCHEMA: Final = pa.schema([
    ("host", pa.string()), ("device", pa.string()), ("start_ns", pa.int64()),
    ("end_ns", pa.int64()), ("measured_wh", pa.float64()), ("attributed_wh", pa.float64()),
    ("idle_wh", pa.float64()), ("idle_ns", pa.int64()), ("counter_resets", pa.int32()),
])


def upsert_gpu_energy(cur: duckdb.DuckDBPyConnection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert or replace ``gpu_energy`` intervals (inside the caller's transaction):
    ``(host, device, start_ns, end_ns, measured_wh, attributed_wh, idle_wh, idle_ns,
    counter_resets)``."""
    if not rows:
        return
    columns = zip(_GPU_ENERGY_SCHEMA.names, zip(*rows, strict=True), strict=True)
    table = pa.Table.from_pydict({n: list(c) for n, c in columns}, schema=_GPU_ENERGY_SCHEMA)
    cur.register("_gpu_energy", table)
    cur.execute("INSERT OR REPLACE INTO gpu_energy SELECT * FROM _gpu_energy")
    cur.unregister("_gpu_energy")


def gpu_energy_summary(
    cur: duckdb.DuckDBPyConnection, *, since_ns: int, until_ns: int
) -> list[dict[str, Any]]:
    """Per GPU, measured energy over the sample intervals starting in the range, split into
    attributed (requests in flight) and idle, from ``gpu_energy`` (written by the GPU pass)."""
    result = cur.execute(
        "SELECT host, device, count(*) AS intervals, min(start_ns) AS start_ns, "
        "max(end_ns) AS end_ns, sum(measured_wh) AS measured_wh, "
        "sum(attributed_wh) AS attributed_wh, sum(idle_wh) AS idle_wh, "
        "sum(idle_ns) AS idle_ns, sum(counter_resets) AS counter_resets FROM gpu_energy "
        "WHERE start_ns >= ? AND start_ns < ? GROUP BY host, device ORDER BY host, device",
        [since_ns, until_ns],
    )
    names = [d[0] for d in result.description or ()]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def gpu_hourly_usage(
    cur: duckdb.DuckDBPyConnection, *, since_ns: int, until_ns: int
) -> list[tuple[Any, ...]]:
    """Per GPU and hour with a utilisation sample: ``(host, device, hour_ns, util %, mean
    power W or None, energy counter increase or None, its unit)``, ordered.

    Utilisation reported as a ratio (unit ``1``) is scaled to percent. The increase is the
    counter's growth within the hour (a drop is a reset: the new reading counts).
    """
    return cur.execute(
        f"""
        WITH util AS (
          SELECT host, device, time_ns - time_ns % {HOUR_NS} AS hour_ns,
                 avg(CASE WHEN unit = '1' THEN value * 100 ELSE value END) AS util
          FROM samples WHERE canonical = 'gpu.utilization' AND time_ns >= $since
            AND time_ns < $until AND host IS NOT NULL AND device IS NOT NULL
          GROUP BY ALL),
        power AS (
          SELECT host, device, time_ns - time_ns % {HOUR_NS} AS hour_ns, avg(value) AS power_w
          FROM samples WHERE canonical = 'gpu.power.draw' AND unit = 'W'
            AND time_ns >= $since AND time_ns < $until
            AND host IS NOT NULL AND device IS NOT NULL
          GROUP BY ALL),
        counter AS (
          SELECT host, device, time_ns - time_ns % {HOUR_NS} AS hour_ns, unit,
                 CASE WHEN d >= 0 THEN d ELSE value END AS inc
          FROM (SELECT host, device, time_ns, unit, value,
                       value - lag(value) OVER (PARTITION BY host, device ORDER BY time_ns) AS d
                FROM samples WHERE canonical = 'gpu.energy.consumed' AND time_ns >= $since
                  AND time_ns < $until AND host IS NOT NULL AND device IS NOT NULL)
          WHERE d IS NOT NULL),
        energy AS (SELECT host, device, hour_ns, unit, sum(inc) AS inc FROM counter GROUP BY ALL)
        SELECT util.host, util.device, util.hour_ns, util.util, power.power_w, energy.inc,
               energy.unit
        FROM util LEFT JOIN power USING (host, device, hour_ns)
                  LEFT JOIN energy USING (host, device, hour_ns)
        ORDER BY 1, 2, 3
        """,  # noqa: S608 - module constants only
        {"since": since_ns, "until": until_ns},
    ).fetchall()


def model_usage(
    cur: duckdb.DuckDBPyConnection,
    *,
    since_ns: int,
    until_ns: int,
    max_input_tokens: int,
    max_output_tokens: int,
) -> list[tuple[Any, ...]]:
    """Per (service, provider, model) of token-priced spans: ``(service, provider, model,
    requests, usd, small requests, their input, cache-read and output tokens, their usd)``,
    where *small* means within both token limits; ordered."""
    small = "input_tokens <= $max_in AND output_tokens <= $max_out"
    return cur.execute(
        f"""
        SELECT service, provider, {GROUP_COLUMNS["model"]} AS model, count(*), sum(cost_usd),
               count(*) FILTER (WHERE {small}),
               coalesce(sum(input_tokens) FILTER (WHERE {small}), 0),
               coalesce(sum(coalesce(cache_read_tokens, 0)) FILTER (WHERE {small}), 0),
               coalesce(sum(output_tokens) FILTER (WHERE {small}), 0),
               coalesce(sum(cost_usd) FILTER (WHERE {small}), 0)
        FROM spans
        WHERE cost_source = 'token_price' AND start_ns >= $since AND start_ns < $until
          AND input_tokens IS NOT NULL AND output_tokens IS NOT NULL
        GROUP BY ALL ORDER BY 1, 2, 3
        """,  # noqa: S608 - module constants only
        {"since": since_ns, "until": until_ns, "max_in": max_input_tokens,
         "max_out": max_output_tokens},
    ).fetchall()


# -- coverage (issue 21) ------------------------------------------------------------------------

COVERAGE_COLUMNS: Final = (
    "service", "requests", "token_price", "gpu_time", "gpu_time_estimated", "unpriced",
    "measured", "estimated", "unknown",
)  # fmt: skip


def coverage_by_service(
    cur: duckdb.DuckDBPyConnection, *, since_ns: int, until_ns: int
) -> list[tuple[Any, ...]]:
    """Per service, requests starting in ``[since_ns, until_ns)`` by cost source (token
    price, GPU time, GPU time at a list price, unpriced) and energy source (measured,
    estimated, unknown): rows in ``COVERAGE_COLUMNS`` order, by service."""
    return cur.execute(
        "SELECT service, count(*), "  # noqa: S608 - module SQL only
        "count(*) FILTER (WHERE cost_usd IS NOT NULL AND cost_source = 'token_price'), "
        "count(*) FILTER (WHERE cost_usd IS NOT NULL AND cost_source = 'gpu_time'), "
        "count(*) FILTER (WHERE cost_usd IS NOT NULL AND cost_source = 'gpu_time_estimated'), "
        "count(*) FILTER (WHERE cost_usd IS NULL), "
        "count(*) FILTER (WHERE energy_wh IS NOT NULL AND energy_source = 'measured'), "
        "count(*) FILTER (WHERE energy_wh IS NOT NULL AND energy_source = 'estimated'), "
        "count(*) FILTER (WHERE energy_wh IS NULL) "
        f"FROM spans WHERE start_ns >= ? AND start_ns < ? AND {_REQUEST} "
        "GROUP BY service ORDER BY service",
        [since_ns, until_ns],
    ).fetchall()


def unknown_energy_groups(
    cur: duckdb.DuckDBPyConnection, *, since_ns: int, until_ns: int, limit: int
) -> list[tuple[Any, ...]]:
    """Requests starting in ``[since_ns, until_ns)`` without an energy figure, grouped by
    ``(service, provider, model, server.address, server.port, host)`` with their count and
    whether any reported output tokens; the *limit* largest groups, largest first."""
    return cur.execute(
        f"SELECT service, provider, {GROUP_COLUMNS['model']} AS model, "  # noqa: S608 - module SQL
        "lower(coalesce(json_extract_string(attributes, '$.\"server.address\"'), "
        "json_extract_string(attributes, '$.\"net.peer.name\"'))) AS address, "
        "json_extract_string(attributes, '$.\"server.port\"') AS port, host, count(*) AS n, "
        "bool_or(output_tokens IS NOT NULL) "
        f"FROM spans WHERE start_ns >= ? AND start_ns < ? AND {_REQUEST} AND energy_wh IS NULL "
        "GROUP BY ALL ORDER BY n DESC, service, model NULLS LAST LIMIT ?",
        [since_ns, until_ns, limit],
    ).fetchall()
