"""FinOps reads: cost, tokens, energy and carbon grouped by an attribute and bucketed in time.

Named read functions taking a cursor (like ``strata.agent.store.db.list_traces``), plus the hourly
rollup that keeps ``GET /api/v1/cost`` fast on large stores.

``group_by`` is either one of the promoted columns in ``GROUP_COLUMNS`` (an allowlist; the
SQL text comes from this module, never from the caller), ``user`` (the ``user.id`` or
``enduser.id`` attribute), or any span/resource attribute key matching ``ATTRIBUTE_KEY``,
which reaches DuckDB only as a bound JSON-path parameter. Filters work the same way and their
values are always bound. So no caller-supplied text is ever interpolated into SQL.

What counts:
- a *request* is a span that names a model or carries a cost or an energy figure (workflow
  and tool spans are not requests, so a trace is not counted once per step);
- ``unpriced_requests`` are requests whose cost is unknown (``cost_usd`` NULL: unknown model,
  self-hosted model with no GPU price, missing token counts). They are reported, never
  priced at 0;
- tokens are summed over requests only (parent spans that repeat their children's totals
  would count them twice).

Rollup: ``cost_hourly`` holds the same aggregates per hour x (service, team, model, provider,
host). ``refresh_cost_rollup`` rebuilds the hours touched by spans received since its last
run (and hours given explicitly, e.g. after the GPU pass re-priced them). A query whose
group and filters are rollup dimensions and whose bucket is a whole number of hours reads
full hours from the rollup, the partial edge hours from ``spans``, and adds the spans
received after the rollup's watermark, so answers never wait for the next refresh. The
rollup only ever holds spans received at or before the watermark, so no span is counted
twice; a batch that commits after a refresh with an older ``received_ns`` (it was stamped
before it got the write lock) is missing from full hours until the next refresh, which
re-scans ``ROLLUP_SLACK_NS`` back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import duckdb
from strata.agent.store.db import DuckDBStore

__all__ = [
    "ATTRIBUTE_KEY",
    "GROUP_COLUMNS",
    "HOUR_NS",
    "ROLLUP_DIMENSIONS",
    "USER_KEYS",
    "GroupSpec",
    "cost_report",
    "group_spec",
    "refresh_cost_rollup",
    "refresh_rollup_hours",
]

HOUR_NS: Final = 3_600_000_000_000
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
# A batch is stamped with received_ns before it takes the write lock, so one stamped
# slightly earlier than the last refresh may commit after it: re-scan this far back.
ROLLUP_SLACK_NS: Final = 300_000_000_000

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
_MEASURES = (
    "requests", "priced_requests", "input_tokens", "output_tokens", "usd", "energy_wh",
    "energy_wh_measured", "energy_wh_estimated", "energy_requests", "co2e_g", "co2e_requests",
    "token_energy_wh", "token_energy_tokens",
)  # fmt: skip
_SUM_MEASURES = ", ".join(f"sum({m}) AS {m}" for m in _MEASURES)
_INTEGER_MEASURES = frozenset(
    {"requests", "priced_requests", "input_tokens", "output_tokens", "energy_requests",
     "co2e_requests", "token_energy_tokens"}
)  # fmt: skip
_S_PER_H = 3600


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
        params.update({"lo": full_lo, "hi": full_hi, "wm": _watermark(cur)})
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
    names = ["bucket_ns", "group", *_MEASURES]
    rows = []
    for row in result.fetchall():
        item = dict(zip(names, row, strict=True))
        for m in _INTEGER_MEASURES:
            item[m] = 0 if item[m] is None and m.endswith("requests") else _int(item[m])
        rows.append(item)
    return rows


def summarize(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Add up cost rows and derive the per-request figures.

    Returns:
        The summed measures plus ``unpriced_requests``, ``wh_per_request``,
        ``j_per_token`` and ``gco2e_per_request`` (None where nothing is known).
    """
    total: dict[str, Any] = {m: None for m in _MEASURES}
    for row in rows:
        for m in _MEASURES:
            if row[m] is not None:
                total[m] = row[m] if total[m] is None else total[m] + row[m]
    for m in ("requests", "priced_requests", "energy_requests", "co2e_requests"):
        total[m] = total[m] or 0
    total["unpriced_requests"] = total["requests"] - total["priced_requests"]
    energy_n, co2_n = total["energy_requests"], total["co2e_requests"]
    total["wh_per_request"] = total["energy_wh"] / energy_n if energy_n else None
    tokens = total["token_energy_tokens"]
    total["j_per_token"] = (
        total["token_energy_wh"] * _S_PER_H / tokens
        if tokens and total["token_energy_wh"] is not None
        else None
    )
    total["gco2e_per_request"] = total["co2e_g"] / co2_n if co2_n else None
    return total


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _watermark(cur: duckdb.DuckDBPyConnection) -> int:
    row = cur.execute("SELECT value FROM meta WHERE key = ?", [ROLLUP_WATERMARK_KEY]).fetchone()
    return int(row[0]) if row else -1


def refresh_rollup_hours(
    cur: duckdb.DuckDBPyConnection, hours: Iterable[int], *, watermark_ns: int | None = None
) -> int:
    """Rebuild the rollup rows of *hours* (hour starts, ns) inside the caller's transaction.

    Only spans received at or before the rollup's watermark (default: the stored one) go in,
    because queries add the spans received after it from the spans table: a span is counted
    in exactly one of the two. Returns how many hours were rebuilt.
    """
    wanted = sorted({h - h % HOUR_NS for h in hours})
    if not wanted:
        return 0
    watermark = _watermark(cur) if watermark_ns is None else watermark_ns
    cur.execute("DELETE FROM cost_hourly WHERE list_contains($hours, hour_ns)", {"hours": wanted})
    cur.execute(
        f"INSERT INTO cost_hourly SELECT start_ns - start_ns % {HOUR_NS} AS hour_ns, "  # noqa: S608 - module SQL
        f"service, team, {GROUP_COLUMNS['model']} AS model, provider, host, {_SPAN_AGGREGATES} "
        "FROM spans WHERE start_ns >= $lo AND start_ns < $hi AND received_ns <= $wm "
        f"AND list_contains($hours, start_ns - start_ns % {HOUR_NS}) GROUP BY ALL",
        {"hours": wanted, "lo": wanted[0], "hi": wanted[-1] + HOUR_NS, "wm": watermark},
    )
    return len(wanted)


def refresh_cost_rollup(store: DuckDBStore, *, hours: Iterable[int] = ()) -> int:
    """Bring ``cost_hourly`` up to date with the spans received since the last refresh.

    Rebuilds every hour touched by spans received since the previous watermark (minus a
    slack for batches that committed late), plus *hours*. Idempotent; one transaction.

    Returns:
        How many hours were rebuilt.
    """
    with store.transaction() as cur:
        previous = _watermark(cur)
        since = previous - ROLLUP_SLACK_NS if previous >= 0 else -1
        row = cur.execute(
            "SELECT max(received_ns) FROM spans WHERE received_ns >= ?", [since]
        ).fetchone()
        latest = row[0] if row else None
        touched = {
            int(r[0])
            for r in cur.execute(
                f"SELECT DISTINCT start_ns - start_ns % {HOUR_NS} FROM spans "  # noqa: S608 - constant
                "WHERE received_ns >= ?",
                [since],
            ).fetchall()
        }
        watermark = max(previous, -1 if latest is None else int(latest))
        rebuilt = refresh_rollup_hours(cur, touched | set(hours), watermark_ns=watermark)
        if watermark > previous:
            cur.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", [ROLLUP_WATERMARK_KEY, str(watermark)]
            )
    return rebuilt
