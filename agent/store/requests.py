"""Request-level reads for deploy-aware comparison: the spans of one service around a change.

Rows are grouped by *entity*: ``root`` (the request: spans without a parent), ``model
<operation>`` (every model call of that operation whatever the model, so a model switch is
compared with the model it replaced) and ``tool <span name>`` (each tool). Each entity gets
at most *limit* rows per side: the last ones before the change and the first ones after it,
so the read stays bounded from one request a minute to thousands a second.
"""

from __future__ import annotations

from typing import Any

import duckdb

REQUEST_COLUMNS = ("entity", "layer", "after", "start_ns", "end_ns", "duration_ns", "failed",
                   "error_type", "input_tokens", "output_tokens", "cost_usd", "provider",
                   "model")

_COLUMNS = """
    {entity} AS entity, layer, start_ns >= $t0 AS after, start_ns, end_ns, duration_ns,
    status = 'error' AS failed, error_type, input_tokens, output_tokens, cost_usd, provider,
    coalesce(response_model, request_model) AS model"""
_ENTITIES = (
    ("'root'", "parent_span_id IS NULL"),
    ("'model ' || operation", "layer = 'model' AND operation IS NOT NULL"),
    ("'tool ' || name", "operation = 'execute_tool'"),
)


def _entity_rows(extra: str, where: str) -> str:
    """One SELECT per entity kind over *where*, unioned; *extra* leads the columns."""
    selects = (f"SELECT {extra}{_COLUMNS.format(entity=e)} FROM spans "  # noqa: S608 - fixed
               f"WHERE {w} AND {where}" for e, w in _ENTITIES)
    return " UNION ALL ".join(selects)


def requests_around(
    cur: duckdb.DuckDBPyConnection,
    service: str,
    *,
    change_ns: int,
    until_ns: int,
    lookback_ns: int,
    old_version: str | None,
    new_version: str | None,
    limit: int,
) -> dict[str, Any]:
    """Spans of *service* per entity: up to *limit* of *old_version* in the *lookback_ns*
    before *change_ns* (the latest ones) and up to *limit* of *new_version* from *change_ns*
    to *until_ns* (the earliest ones), ordered by entity, side and start. A version of None
    matches every version. Returns numpy columns (``REQUEST_COLUMNS``)."""
    rows = _entity_rows("", """service = $service
      AND ((start_ns >= $t0 - $lookback AND start_ns < $t0
            AND ($old::VARCHAR IS NULL OR service_version = $old))
        OR (start_ns >= $t0 AND start_ns < $until
            AND ($new::VARCHAR IS NULL OR service_version = $new)))""")
    sql = f"""
        SELECT * FROM ({rows})
        QUALIFY row_number() OVER (
            PARTITION BY entity, after
            ORDER BY CASE WHEN after THEN start_ns ELSE -start_ns END) <= $limit
        ORDER BY entity, after, start_ns
    """  # noqa: S608 - the interpolated text is fixed; every value is bound
    params = {"service": service, "t0": change_ns, "until": until_ns, "lookback": lookback_ns,
              "old": old_version, "new": new_version, "limit": limit}
    return cur.execute(sql, params).fetchnumpy()


def thin_requests(
    cur: duckdb.DuckDBPyConnection, *, start_ns: int, end_ns: int, max_requests: int
) -> dict[str, Any]:
    """Every span of the entities with at most *max_requests* spans in ``[start_ns,
    end_ns)`` (the thinly used ones, judged request by request), as numpy columns:
    ``service`` plus ``REQUEST_COLUMNS`` (``after`` is always true), by service, entity and
    start. A span without a parent counts as ``root`` and as its operation's entity."""
    rows = _entity_rows("service, ", "start_ns >= $t0 AND start_ns < $end")
    sql = f"""
        WITH rows AS ({rows}),
        thin AS (SELECT service, entity FROM rows GROUP BY ALL HAVING count(*) <= $max)
        SELECT rows.* FROM rows JOIN thin USING (service, entity)
        ORDER BY service, entity, start_ns
    """  # noqa: S608 - the interpolated text is fixed; every value is bound
    return cur.execute(sql, {"t0": start_ns, "end": end_ns, "max": max_requests}).fetchnumpy()
