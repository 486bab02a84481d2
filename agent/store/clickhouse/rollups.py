"""The window's per-bucket reads from the per-minute rollups (``strata_spans_minute``,
``strata_samples_minute``: strata_schema.sql), for buckets and windows of whole minutes.

Each read merges the minutes of a bucket and gives the rows ``reads.ClickHouseReads``
gives from the raw rows (the same columns, types and grouping), reading ~one row per
group and minute instead of every span or sample.
"""

from __future__ import annotations

from typing import Any, Final

import pyarrow as pa
from strata.agent.store.clickhouse.engine import Engine
from strata.agent.units import MINUTE_NS

_MINUTES_IN: Final = "Minute >= {start:Int64} AND Minute < {end:Int64}"
_BUCKET: Final = "intDiv(Minute, {b:Int64}) * {b:Int64}"
# Minute buckets (the analyzer's) group by the sort key's prefix, so ClickHouse aggregates
# in order: a minute's quantile states are merged and dropped before the next is read,
# and the read holds one minute of durations, not the window's. On one stream, in small
# blocks: more streams each hold partial minutes until they are merged at the end, and
# bigger blocks hold more rows at once (a fleet's day on chdb, span read: 4.0 s and +540
# MiB with the defaults, 3.1 s and +200 MiB so; a GPU field's read: 1.15 s and +290 MiB,
# 0.92 s and +160 MiB).
_IN_ORDER: Final = "optimize_aggregation_in_order = 1, max_threads = 1, max_block_size = 4096"
# Series keys repeat on every minute of their series: sent as LowCardinality they reach
# Python as an Arrow dictionary (each key once) instead of a string a row.
_KEYS_ONCE: Final = "output_format_arrow_low_cardinality_as_dictionary = 1"


def _bucket(params: dict[str, Any]) -> str:
    return "Minute" if params["b"] == MINUTE_NS else _BUCKET


def covers(*, start_ns: int, end_ns: int, bucket_ns: int) -> bool:
    """Whether the rollups answer a read of these bounds exactly (whole minutes)."""
    return all(v % MINUTE_NS == 0 for v in (start_ns, end_ns, bucket_ns))


def span_stats(engine: Engine, params: dict[str, Any]) -> pa.Table:
    """``span_bucket_stats``'s rows (p50/p95 0 where no request succeeded)."""
    return engine.query(f"""
        SELECT bucket, toLowCardinality(concat(ServiceName, {{sep:String}}, StrataLayer,
                   {{sep:String}}, GenAiOperation, {{sep:String}}, Name)) AS gkey,
               n, errors, q[1] / 1e9 AS p50, q[2] / 1e9 AS p95, in_tok, out_tok, n_tok,
               cost, n_cost
        FROM (
            SELECT {_bucket(params)} AS bucket, ServiceName, StrataLayer, GenAiOperation, Name,
                   sum(Requests) AS n, sum(Errors) AS errors,
                   quantilesExactInclusiveIfMerge(0.5, 0.95)(Latency) AS q,
                   sum(InTokens) AS in_tok, sum(OutTokens) AS out_tok, sum(Tokened) AS n_tok,
                   if(sum(Priced) = 0, NULL, sum(Usd)) AS cost, sum(Priced) AS n_cost
            FROM strata_spans_minute
            WHERE {_MINUTES_IN}
            GROUP BY bucket, ServiceName, StrataLayer, GenAiOperation, Name)
        SETTINGS {_IN_ORDER}, {_KEYS_ONCE}
        """, params)  # noqa: S608 - fixed text; values are bound


def model_usage(engine: Engine, params: dict[str, Any]) -> pa.Table:
    """``model_bucket_usage``'s rows: model spans reporting output tokens."""
    return engine.query(f"""
        SELECT {_BUCKET} AS bucket,
               toLowCardinality(concat(ServiceName, {{sep:String}}, StrataLayer,
                   {{sep:String}}, GenAiOperation, {{sep:String}}, Name)) AS gkey,
               Model AS model, Provider AS provider,
               sum(InTokens) AS in_tok, sum(OutTokens) AS out_tok, sum(Tokened) AS n_tok
        FROM strata_spans_minute
        WHERE {_MINUTES_IN} AND StrataLayer = 'model'
        GROUP BY bucket, gkey, model, provider
        HAVING n_tok > 0
        SETTINGS {_KEYS_ONCE}
        """, params)  # noqa: S608 - fixed text; values are bound


def sample_stats(engine: Engine, params: dict[str, Any], wanted: str) -> pa.Table:
    """``sample_bucket_stats``'s rows of the canonicals *wanted* selects."""
    return engine.query(f"""
        SELECT bucket,
               toLowCardinality(concat(Canonical, {{sep:String}}, Host, {{sep:String}},
                   Device, {{sep:String}}, ServiceName, {{sep:String}}, labels,
                   {{sep:String}}, MetricUnit, {{sep:String}}, StrataLayer)) AS skey,
               total / samples AS mean, hi, lo
        FROM (
            SELECT {_bucket(params)} AS bucket, Canonical, Host, Device, ServiceName,
                   MetricUnit, StrataLayer, any(Labels) AS labels, sum(Samples) AS samples,
                   sum(Total) AS total, max(Hi) AS hi, min(Lo) AS lo
            FROM strata_samples_minute
            WHERE {wanted} AND {_MINUTES_IN}
            GROUP BY Canonical, bucket, Host, Device, ServiceName, MetricUnit, StrataLayer,
                     Series)
        SETTINGS {_IN_ORDER}, {_KEYS_ONCE}
        """, params)  # noqa: S608 - fixed filters; values are bound


def clock_reasons(engine: Engine, params: dict[str, Any]) -> pa.Table:
    """``clock_reason_fractions``'s rows: the share of samples whose mask hits {mask}."""
    return engine.query(f"""
        SELECT bucket, toLowCardinality(concat(Host, {{sep:String}}, Device)) AS skey,
               arraySum(arrayMap((m, n) -> if(bitAnd(m, {{mask:Int64}}) != 0, n, 0),
                                 mapKeys(r), mapValues(r))) / arraySum(mapValues(r)) AS frac
        FROM (
            SELECT {_bucket(params)} AS bucket, Host, Device, sumMap(Reasons) AS r
            FROM strata_samples_minute
            WHERE Canonical = 'gpu.clock_event_reasons' AND {_MINUTES_IN}
            GROUP BY bucket, Host, Device)
        SETTINGS {_IN_ORDER}, {_KEYS_ONCE}
        """, params)  # noqa: S608 - fixed text; values are bound



def thin_requests(engine: Engine, params: dict[str, Any], entity_rows: str) -> pa.Table:
    """``thin_requests``' rows: *entity_rows* (the request rows of a service, filtered by
    ``{window}``) of the entities with at most {max} requests in the window, found in
    ``strata_service_minute``; the raw spans are read only for their services."""
    thin = f"""SELECT ServiceName, Name FROM strata_service_minute
        WHERE Kind = 'entity' AND {_MINUTES_IN}
        GROUP BY ServiceName, Name HAVING sum(Requests) <= {{max:Int64}}"""  # noqa: S608
    window = f"""ServiceName IN (SELECT ServiceName FROM ({thin}))
        AND Timestamp >= fromUnixTimestamp64Nano({{start:Int64}})
        AND Timestamp < fromUnixTimestamp64Nano({{end:Int64}})"""  # noqa: S608
    return engine.query(f"""
        SELECT * FROM ({entity_rows.replace("{window}", window)})
        WHERE (service, entity) IN ({thin})
        ORDER BY service, entity, start_ns
        """, params)  # noqa: S608 - fixed text; values are bound


def dependencies(engine: Engine, params: dict[str, Any]) -> pa.Table:
    """``service_dependencies``' rows."""
    return engine.query(f"""
        SELECT DISTINCT toString(ServiceName) AS service, Name AS dep
        FROM strata_service_minute
        WHERE Kind = 'dependency' AND {_MINUTES_IN}
        ORDER BY service, dep
        """, params)  # noqa: S608 - fixed text; values are bound
