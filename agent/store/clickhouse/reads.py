"""``seam.WindowReads`` in ClickHouse SQL: every aggregate is computed by ClickHouse (per
bucket, per service x layer x operation, quantiles with ``quantilesExactInclusive``, the
same linear interpolation as DuckDB's ``quantile_cont``); raw spans never reach Python,
except the bounded per-request reads of deploy comparison (``requests``), as on DuckDB.
Per-bucket reads of whole minutes (the analyzer's) read the per-minute rollups
(``rollups``); other bounds group the raw rows.

Columns and rows are those of the DuckDB functions in ``strata.agent.store.spans``,
``samples``, ``requests`` and ``deployments``. Time filters use ``Timestamp``/``TimeUnix``
so the daily partitions and the sort key prune.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from strata.agent.model import Deployment
from strata.agent.store.clickhouse import rollups
from strata.agent.store.clickhouse.engine import Engine, columns, rows
from strata.agent.units import MINUTE_NS

_SPANS_IN: Final = """Timestamp >= fromUnixTimestamp64Nano({start:Int64})
    AND Timestamp < fromUnixTimestamp64Nano({end:Int64})"""
_SAMPLES_IN: Final = """TimeUnix >= fromUnixTimestamp64Nano({start:Int64})
    AND TimeUnix < fromUnixTimestamp64Nano({end:Int64})"""
_GROUP_KEY: Final = """concat(ServiceName, {sep:String}, StrataLayer, {sep:String},
    GenAiOperation, {sep:String}, if(StrataLayer = 'model', '', SpanName))"""
_BUCKET: Final = "intDiv(StartNs, {b:Int64}) * {b:Int64}"
_NOT_HISTOGRAM: Final = "NOT match(Canonical, '[._](bucket|count|sum|created)$')"
_REQUEST_COLUMNS: Final = """{entity} AS entity, StrataLayer AS layer,
    StartNs >= {{t0:Int64}} AS after, StartNs AS start_ns,
    StartNs + toInt64(Duration) AS end_ns, toInt64(Duration) AS duration_ns,
    StatusCode = 'Error' AS failed, nullIf(ErrorType, '') AS error_type,
    InputTokens AS input_tokens, OutputTokens AS output_tokens, CostUsd AS cost_usd,
    nullIf(GenAiProvider, '') AS provider,
    nullIf(if(GenAiResponseModel != '', GenAiResponseModel, GenAiRequestModel), '') AS model"""
_ENTITIES: Final = (
    ("'root'", "ParentSpanId = ''"),
    ("concat('model ', GenAiOperation)", "StrataLayer = 'model' AND GenAiOperation != ''"),
    ("concat('tool ', SpanName)", "GenAiOperation = 'execute_tool'"),
)
_DEPLOYMENT_COLUMNS: Final = ("service, time_ns, version, previous_version, model, "
                              "previous_model, source, description")


def _entity_rows(extra: str, where: str) -> str:
    return " UNION ALL ".join(
        f"SELECT {extra}{_REQUEST_COLUMNS.format(entity=e)} FROM otel_traces "  # noqa: S608
        f"WHERE {w} AND {where}" for e, w in _ENTITIES)


class ClickHouseReads:
    """The window's reads on one ClickHouse database (*rollups*: False reads the raw rows
    whatever the bounds, to check the rollups against them)."""

    def __init__(self, engine: Engine, *, rollups: bool = True) -> None:
        self._engine = engine
        self._rollups = rollups

    def _by_minute(self, start_ns: int, end_ns: int, bucket_ns: int = MINUTE_NS) -> bool:
        return self._rollups and rollups.covers(start_ns=start_ns, end_ns=end_ns,
                                                bucket_ns=bucket_ns)

    def span_bucket_stats(self, *, start_ns: int, end_ns: int, bucket_ns: int,
                          sep: str) -> dict[str, Any]:
        params = {"b": bucket_ns, "sep": sep, "start": start_ns, "end": end_ns}
        table = rollups.span_stats(self._engine, params) if self._by_minute(
            start_ns, end_ns, bucket_ns) else self._engine.query(f"""
            SELECT bucket, concat(ServiceName, {{sep:String}}, StrataLayer, {{sep:String}},
                                  GenAiOperation, {{sep:String}}, Name) AS gkey,
                   n, errors, q[1] / 1e9 AS p50,
                   q[2] / 1e9 AS p95, in_tok, out_tok, n_tok, cost, n_cost
            FROM (
                SELECT {_BUCKET} AS bucket, ServiceName, StrataLayer, GenAiOperation,
                       if(StrataLayer = 'model', '', SpanName) AS Name, count() AS n,
                       countIf(StatusCode = 'Error') AS errors,
                       quantilesExactInclusiveIf(0.5, 0.95)(Duration, StatusCode != 'Error')
                         AS q,
                       coalesce(sumIf(InputTokens, OutputTokens IS NOT NULL), 0) AS in_tok,
                       coalesce(sum(OutputTokens), 0) AS out_tok,
                       count(OutputTokens) AS n_tok,
                       sum(CostUsd) AS cost, count(CostUsd) AS n_cost
                FROM otel_traces
                WHERE {_SPANS_IN} AND GenAiOperation != ''
                GROUP BY bucket, ServiceName, StrataLayer, GenAiOperation, Name)
            """, params)  # noqa: S608
        cols = columns(table)
        # no successful request in a bucket: no latency (DuckDB's NULL), not ClickHouse's 0
        ok = cols["n"] > cols["errors"]
        for name in ("p50", "p95"):
            cols[name] = cols[name].astype(float)
            cols[name][~ok] = float("nan")
        return cols

    def model_bucket_usage(self, *, start_ns: int, end_ns: int, bucket_ns: int,
                           sep: str) -> dict[str, Any]:
        params = {"b": bucket_ns, "sep": sep, "start": start_ns, "end": end_ns}
        if self._by_minute(start_ns, end_ns, bucket_ns):
            return columns(rollups.model_usage(self._engine, params))
        return columns(self._engine.query(f"""
            SELECT {_BUCKET} AS bucket, {_GROUP_KEY} AS gkey,
                   if(GenAiResponseModel != '', GenAiResponseModel, GenAiRequestModel) AS model,
                   toString(GenAiProvider) AS provider,
                   coalesce(sum(InputTokens), 0) AS in_tok,
                   coalesce(sum(OutputTokens), 0) AS out_tok, count() AS n_tok
            FROM otel_traces
            WHERE {_SPANS_IN} AND GenAiOperation != '' AND StrataLayer = 'model'
              AND OutputTokens IS NOT NULL
            GROUP BY bucket, gkey, model, provider
            """, params))  # noqa: S608

    def sample_bucket_stats(self, *, start_ns: int, end_ns: int, bucket_ns: int, sep: str,
                            canonicals: Sequence[str] | None) -> dict[str, Any]:
        wanted = "has({names:Array(String)}, Canonical)" if canonicals is not None \
            else _NOT_HISTOGRAM
        params: dict[str, Any] = {"b": bucket_ns, "sep": sep, "start": start_ns,
                                  "end": end_ns}
        if canonicals is not None:
            params["names"] = list(canonicals)
        if self._by_minute(start_ns, end_ns, bucket_ns):
            return columns(rollups.sample_stats(self._engine, params, wanted))
        # aggregate first, then format each series' key once (not once per sample)
        return columns(self._engine.query(f"""
            SELECT bucket,
                   concat(Canonical, {{sep:String}}, Host, {{sep:String}}, Device,
                          {{sep:String}}, ServiceName, {{sep:String}},
                          toJSONString(mapFilter((k, v) -> NOT startsWith(k, 'strata.'),
                                                 Labels)),
                          {{sep:String}}, MetricUnit, {{sep:String}}, StrataLayer) AS skey,
                   mean, hi, lo
            FROM (
                SELECT intDiv(TimeNs, {{b:Int64}}) * {{b:Int64}} AS bucket, Canonical, Host,
                       Device, ServiceName, any(Attributes) AS Labels, MetricUnit,
                       StrataLayer, avg(Value) AS mean, max(Value) AS hi, min(Value) AS lo
                FROM strata_samples
                WHERE {wanted} AND {_SAMPLES_IN}
                GROUP BY bucket, Canonical, Host, Device, ServiceName, MetricUnit, StrataLayer,
                         sipHash128(Attributes))
            """, params))  # noqa: S608 - fixed filters; values are bound

    def clock_reason_fractions(self, *, start_ns: int, end_ns: int, bucket_ns: int, sep: str,
                               mask: int) -> dict[str, Any]:
        params = {"b": bucket_ns, "sep": sep, "mask": mask, "start": start_ns, "end": end_ns}
        if self._by_minute(start_ns, end_ns, bucket_ns):
            return columns(rollups.clock_reasons(self._engine, params))
        return columns(self._engine.query(f"""
            SELECT intDiv(TimeNs, {{b:Int64}}) * {{b:Int64}} AS bucket,
                   concat(Host, {{sep:String}}, Device) AS skey,
                   avg(if(bitAnd(toInt64(round(Value)), {{mask:Int64}}) != 0, 1.0, 0.0))
                     AS frac
            FROM strata_samples
            WHERE Canonical = 'gpu.clock_event_reasons' AND {_SAMPLES_IN}
            GROUP BY bucket, skey
            """, params))  # noqa: S608

    def deployments_between(self, since_ns: int, until_ns: int) -> list[Deployment]:
        found = rows(self._engine.query(
            f"SELECT {_DEPLOYMENT_COLUMNS} FROM strata_deployments FINAL "  # noqa: S608
            "WHERE time_ns >= {since:Int64} AND time_ns < {until:Int64} "
            "ORDER BY time_ns, service, source", {"since": since_ns, "until": until_ns}))
        return [Deployment(service=r[0], time_unix_nano=int(r[1]), version=r[2],
                           previous_version=r[3], model=r[4], previous_model=r[5],
                           source=r[6], description=r[7]) for r in found]

    def requests_around(self, service: str, *, change_ns: int, until_ns: int,
                        lookback_ns: int, old_version: str | None, new_version: str | None,
                        limit: int) -> dict[str, Any]:
        lo = change_ns - lookback_ns
        spans = _entity_rows("", """ServiceName = {service:String}
            AND Timestamp >= fromUnixTimestamp64Nano({lo:Int64})
            AND Timestamp < fromUnixTimestamp64Nano({until:Int64})
            AND ((StartNs < {t0:Int64} AND ({old:Nullable(String)} IS NULL
                                             OR ServiceVersion = {old:Nullable(String)}))
              OR (StartNs >= {t0:Int64} AND ({new:Nullable(String)} IS NULL
                                             OR ServiceVersion = {new:Nullable(String)})))""")
        cols = columns(self._engine.query(f"""
            SELECT * EXCEPT (rank) FROM (
                SELECT *, row_number() OVER (
                    PARTITION BY entity, after
                    ORDER BY if(after, start_ns, -start_ns)) AS rank
                FROM ({spans}))
            WHERE rank <= {{limit:Int64}}
            ORDER BY entity, after, start_ns
            """, {"service": service, "t0": change_ns, "lo": lo,  # noqa: S608 - fixed text
                  "until": max(until_ns, lo), "old": old_version, "new": new_version,
                  "limit": limit}))
        return cols

    def thin_requests(self, *, start_ns: int, end_ns: int, max_requests: int) -> dict[str, Any]:
        params = {"t0": start_ns, "start": start_ns, "end": end_ns, "max": max_requests}
        if self._by_minute(start_ns, end_ns):
            return columns(rollups.thin_requests(
                self._engine, params, _entity_rows("ServiceName AS service, ", "{window}")))
        spans = _entity_rows("ServiceName AS service, ", _SPANS_IN)
        return columns(self._engine.query(f"""
            WITH req AS ({spans})
            SELECT * FROM req
            WHERE (service, entity) IN (
                SELECT service, entity FROM req GROUP BY service, entity
                HAVING count() <= {{max:Int64}})
            ORDER BY service, entity, start_ns
            """, params))  # noqa: S608

    def service_dependencies(self, *, start_ns: int, end_ns: int) -> list[tuple[str, str]]:
        params = {"start": start_ns, "end": end_ns}
        if self._by_minute(start_ns, end_ns):
            found = rows(rollups.dependencies(self._engine, params))
        else:
            found = rows(self._engine.query(f"""
                SELECT DISTINCT service, dep FROM (
                    SELECT toString(ServiceName) AS service, toString(Host) AS dep
                    FROM otel_traces
                    WHERE StrataLayer IN ('model', 'serving') AND {_SPANS_IN}
                    UNION ALL
                    SELECT toString(ServiceName), toString(ServerAddress)
                    FROM otel_traces
                    WHERE StrataLayer IN ('model', 'serving', 'data') AND {_SPANS_IN})
                WHERE dep != '' ORDER BY service, dep
                """, params))  # noqa: S608 - fixed text
        return [(str(s), str(d)) for s, d in found]

    def event_time_range(self) -> tuple[int, int] | None:
        # min/max of the partition key's column: answered from each part's own min/max
        # (ClickHouse's implicit minmax projection), not by scanning every row
        found = rows(self._engine.query("""
            SELECT toUnixTimestamp64Nano(min(t0)), toUnixTimestamp64Nano(max(t1)), count()
            FROM (
                SELECT min(Timestamp) AS t0, max(Timestamp) AS t1, count() AS n
                FROM otel_traces
                UNION ALL
                SELECT min(TimeUnix), max(TimeUnix), count() FROM otel_metrics_gauge
                UNION ALL
                SELECT min(TimeUnix), max(TimeUnix), count() FROM otel_metrics_sum)
            WHERE n > 0
            """))
        if not found or found[0][2] == 0:
            return None
        return int(found[0][0]), int(found[0][1])
