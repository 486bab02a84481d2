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

_ENTITY_ROWS = """
    SELECT {entity} AS entity, layer, start_ns >= $t0 AS after, start_ns, end_ns,
           duration_ns, status = 'error' AS failed, error_type, input_tokens, output_tokens,
           cost_usd, provider, coalesce(response_model, request_model) AS model
    FROM spans
    WHERE service = $service AND {where}
      AND ((start_ns >= $t0 - $lookback AND start_ns < $t0
            AND ($old::VARCHAR IS NULL OR service_version = $old))
        OR (start_ns >= $t0 AND start_ns < $until
            AND ($new::VARCHAR IS NULL OR service_version = $new)))
"""
_ENTITIES = (
    ("'root'", "parent_span_id IS NULL"),
    ("'model ' || operation", "layer = 'model' AND operation IS NOT NULL"),
    ("'tool ' || name", "operation = 'execute_tool'"),
)


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
    union = " UNION ALL ".join(_ENTITY_ROWS.format(entity=e, where=w) for e, w in _ENTITIES)
    sql = f"""
        SELECT * FROM ({union})
        QUALIFY row_number() OVER (
            PARTITION BY entity, after
            ORDER BY CASE WHEN after THEN start_ns ELSE -start_ns END) <= $limit
        ORDER BY entity, after, start_ns
    """  # noqa: S608 - the interpolated text is fixed; every value is bound
    params = {"service": service, "t0": change_ns, "until": until_ns, "lookback": lookback_ns,
              "old": old_version, "new": new_version, "limit": limit}
    return cur.execute(sql, params).fetchnumpy()
