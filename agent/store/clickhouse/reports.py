"""``seam.ReportReads`` in ClickHouse SQL: the API's reads on the hub (traces, deployments,
cost, coverage and energy). Rows are those of the DuckDB functions they mirror
(``strata.agent.store.spans.list_traces``/``trace_spans``, ``logs.trace_logs``,
``deployments.list_deployments``, ``costs.cost_report``/``coverage_by_service``/
``unknown_energy_groups``; the GPU reads are ``gpu_energy``'s); every aggregate is computed
by ClickHouse, only the rows of one trace reach Python.

The Collector's maps hold ``''`` for an absent key where DuckDB holds NULL: reads turn
``''`` into NULL (``nullIf``) so both engines answer alike. Attribute values are strings
on the hub (the Collector's schema stores ``Map(String, String)``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from strata.agent.model import Layer, Sample, SpanRecord
from strata.agent.store.anomalies import ANOMALY_COLUMNS, WATERMARK_KEY
from strata.agent.store.clickhouse import gpu_energy
from strata.agent.store.clickhouse.engine import Engine, rows
from strata.agent.store.costs import MEASURES, USER_KEYS, group_spec
from strata.agent.store.deployments import DEPLOYMENT_COLUMNS
from strata.agent.store.logs import TRACE_LOG_COLUMNS
from strata.agent.store.samples import check_label_key
from strata.agent.store.spans import TARGET_KEYS, TRACE_SPAN_COLUMNS, span_record
from strata.agent.units import HOUR_NS

_MODEL: Final = "nullIf(if(GenAiResponseModel != '', GenAiResponseModel, GenAiRequestModel), '')"
# costs.GROUP_COLUMNS over otel_traces
GROUP_COLUMNS: Final[Mapping[str, str]] = {
    "team": "nullIf(Team, '')", "service": "ServiceName", "model": _MODEL,
    "provider": "nullIf(GenAiProvider, '')", "host": "nullIf(Host, '')",
    "operation": "nullIf(GenAiOperation, '')", "service_version": "nullIf(ServiceVersion, '')",
    "layer": "StrataLayer",
}
# samples.metric_series's column labels over strata_samples
_SAMPLE_COLUMNS: Final = {"host": "nullIf(Host, '')", "device": "nullIf(Device, '')",
                          "service": "nullIf(ServiceName, '')"}
# samples._NEAR_HOSTS: layer samples of the given hosts or services, no histogram parts
_NEAR_HOSTS: Final = """StrataLayer IN ('infrastructure', 'serving', 'data')
    AND (has({hosts:Array(String)}, Host) OR has({hosts:Array(String)}, ServiceName))
    AND NOT match(Canonical, '[._](bucket|count|sum|created)$')"""
_ENERGY_SOURCE: Final = "EnergySource"
_COST_SOURCE: Final = "CostSource"
_REQUEST: Final = ("(GenAiRequestModel != '' OR GenAiResponseModel != '' "
                   "OR CostUsd IS NOT NULL OR EnergyWh IS NOT NULL)")
# costs._SPAN_AGGREGATES, in MEASURES order
_AGGREGATES: Final = f"""
    countIf({_REQUEST}) AS requests,
    count(CostUsd) AS priced_requests,
    sumIf(InputTokens, {_REQUEST}) AS input_tokens,
    sumIf(OutputTokens, {_REQUEST}) AS output_tokens,
    sum(CostUsd) AS usd,
    sum(EnergyWh) AS energy_wh,
    sumIf(EnergyWh, {_ENERGY_SOURCE} = 'measured') AS energy_wh_measured,
    sumIf(EnergyWh, {_ENERGY_SOURCE} = 'estimated') AS energy_wh_estimated,
    count(EnergyWh) AS energy_requests,
    sum(Co2eG) AS co2e_g,
    count(Co2eG) AS co2e_requests,
    sumIf(EnergyWh, InputTokens IS NOT NULL AND OutputTokens IS NOT NULL) AS token_energy_wh,
    sumIf(InputTokens + OutputTokens, EnergyWh IS NOT NULL) AS token_energy_tokens
"""
_IN_RANGE: Final = """Timestamp >= fromUnixTimestamp64Nano({since:Int64})
    AND Timestamp < fromUnixTimestamp64Nano({until:Int64})"""
# TRACE_SPAN_COLUMNS over otel_traces (attributes: Strata's own keys dropped in Python)
_SPAN_COLUMNS: Final = {
    "trace_id": "TraceId", "span_id": "SpanId", "parent_span_id": "nullIf(ParentSpanId, '')",
    "name": "SpanName", "kind": "lower(SpanKind)", "start_ns": "StartNs",
    "end_ns": "StartNs + toInt64(Duration)", "duration_ns": "toInt64(Duration)",
    "status": "lower(StatusCode)", "service": "ServiceName",
    "service_version": "nullIf(ServiceVersion, '')", "layer": "StrataLayer",
    "operation": "nullIf(GenAiOperation, '')", "provider": "nullIf(GenAiProvider, '')",
    "request_model": "nullIf(GenAiRequestModel, '')",
    "response_model": "nullIf(GenAiResponseModel, '')", "input_tokens": "InputTokens",
    "output_tokens": "OutputTokens",
    "cache_read_tokens": "toInt64OrNull(SpanAttributes['gen_ai.usage.cache_read.input_tokens'])",
    "reasoning_tokens": "toInt64OrNull(SpanAttributes['gen_ai.usage.reasoning.output_tokens'])",
    "error_type": "nullIf(ErrorType, '')", "host": "nullIf(Host, '')", "team": "nullIf(Team, '')",
    "cost_usd": "CostUsd", "cost_source": f"nullIf({_COST_SOURCE}, '')", "energy_wh": "EnergyWh",
    "energy_source": f"nullIf({_ENERGY_SOURCE}, '')", "co2e_g": "Co2eG",
    "attributes": "SpanAttributes",
}
# Keys Strata's writer adds to a span's attributes (rows.span_attributes): not the app's.
_OWN_KEYS: Final = frozenset({"gen_ai.usage.cost.usd", "strata.energy.wh", "strata.co2e.g",
                              "strata.energy.source", "strata.cost.source"})
_LOG_COLUMNS: Final = {
    "time_ns": "toUnixTimestamp64Nano(Timestamp)", "span_id": "nullIf(SpanId, '')",
    "service": "ServiceName", "severity_number": "toInt32(SeverityNumber)",
    "severity_text": "nullIf(SeverityText, '')", "event_name": "nullIf(EventName, '')",
    "error_type": "nullIf(LogAttributes['exception.type'], '')", "body": "nullIf(Body, '')",
    "attributes": "LogAttributes",
    "span_event": "LogAttributes['strata.span_event'] = 'true'",
}


def _group_sql(key: str, slot: str) -> tuple[str, dict[str, str]]:
    """A group or filter key (validated by ``costs.group_spec``) as SQL over otel_traces and
    its bound parameters: an attribute key reaches ClickHouse only as a parameter."""
    group_spec(key)  # raises ValueError for a key that is not allowed
    if key in GROUP_COLUMNS:
        return GROUP_COLUMNS[key], {}
    keys = USER_KEYS if key == "user" else (key,)
    params = {f"{slot}{i}": k for i, k in enumerate(keys)}
    parts = [f"nullIf({m}[{{{name}:String}}], '')" for name in params
             for m in ("SpanAttributes", "ResourceAttributes")]
    return f"coalesce({', '.join(parts)})", params


class ClickHouseReports:
    """The API's reads on one ClickHouse database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def list_traces(self, *, service: str | None = None, model: str | None = None,
                    status: str | None = None, min_duration_ns: int | None = None,
                    since_ns: int | None = None, until_ns: int | None = None,
                    limit: int = 100) -> list[dict[str, Any]]:
        """Trace summaries, newest first, for traces with a span matching every filter."""
        table = self._engine.query("""
            SELECT TraceId AS trace_id, min(StartNs) AS start_ns,
                   max(StartNs + toInt64(Duration)) - min(StartNs) AS duration_ns,
                   count() AS spans, argMin(SpanName, StartNs) AS root_name,
                   argMin(ServiceName, StartNs) AS service,
                   max(StatusCode = 'Error') AS has_error,
                   sum(InputTokens) AS input_tokens,
                   sum(OutputTokens) AS output_tokens, sum(CostUsd) AS cost_usd,
                   sum(EnergyWh) AS energy_wh
            FROM otel_traces
            WHERE TraceId IN (
                SELECT TraceId FROM otel_traces
                WHERE ({service:Nullable(String)} IS NULL
                       OR ServiceName = {service:Nullable(String)})
                  AND ({model:Nullable(String)} IS NULL
                       OR GenAiRequestModel = {model:Nullable(String)}
                       OR GenAiResponseModel = {model:Nullable(String)})
                  AND ({status:Nullable(String)} IS NULL
                       OR lower(StatusCode) = {status:Nullable(String)})
                  AND ({lo:Nullable(Int64)} IS NULL OR StartNs >= {lo:Nullable(Int64)})
                  AND ({hi:Nullable(Int64)} IS NULL OR StartNs < {hi:Nullable(Int64)}))
            GROUP BY TraceId
            HAVING {min:Nullable(Int64)} IS NULL OR duration_ns >= {min:Nullable(Int64)}
            ORDER BY start_ns DESC, trace_id
            LIMIT {limit:Int64}
            """, {"service": service, "model": model, "status": status, "lo": since_ns,
                  "hi": until_ns, "min": min_duration_ns, "limit": limit})
        found: list[dict[str, Any]] = table.to_pylist()
        for row in found:
            row["has_error"] = bool(row["has_error"])
        return found

    def trace_spans(self, trace_id: str) -> list[dict[str, Any]]:
        """Every span of one trace, in start order (``spans.trace_spans``'s columns)."""
        select = ", ".join(f"{sql} AS {name}" for name, sql in _SPAN_COLUMNS.items())
        table = self._engine.query(
            f"SELECT {select} FROM otel_traces WHERE TraceId = {{t:String}} "  # noqa: S608
            "ORDER BY start_ns, span_id", {"t": trace_id})
        spans = []
        for row in table.to_pylist():
            span = {name: row[name] for name in TRACE_SPAN_COLUMNS}
            span["attributes"] = {k: v for k, v in row["attributes"]
                                  if k not in _OWN_KEYS and not k.startswith("strata.")}
            spans.append(span)
        return spans

    def trace_logs(self, trace_id: str) -> list[dict[str, Any]]:
        """The log records and span events of one trace in time order (``logs.trace_logs``;
        a body is the text ClickHouse holds)."""
        select = ", ".join(f"{sql} AS {name}" for name, sql in _LOG_COLUMNS.items())
        table = self._engine.query(
            f"SELECT DISTINCT {select} FROM otel_logs WHERE TraceId = {{t:String}} "  # noqa: S608
            "ORDER BY time_ns, span_id, event_name", {"t": trace_id})
        out = []
        for row in table.to_pylist():
            record = {name: row[name] for name in TRACE_LOG_COLUMNS}
            record["span_event"] = bool(record["span_event"])
            record["attributes"] = {k: v for k, v in row["attributes"]
                                    if k not in ("exception.type", "strata.span_event")}
            out.append(record)
        return out

    def list_anomalies(self, *, service: str | None = None, host: str | None = None,
                       layer: str | None = None, signal: str | None = None,
                       min_score: float = 0.0, since_ns: int | None = None,
                       until_ns: int | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """``anomalies.list_anomalies`` over ``strata_anomalies`` (an empty filter matches
        everything)."""
        table = self._engine.query(f"""
            SELECT {", ".join(ANOMALY_COLUMNS)} FROM strata_anomalies FINAL
            WHERE ({{service:String}} = '' OR service = {{service:String}})
              AND ({{host:String}} = '' OR host = {{host:String}})
              AND ({{layer:String}} = '' OR layer = {{layer:String}})
              AND ({{signal:String}} = '' OR signal = {{signal:String}})
              AND score >= {{min:Float64}}
              AND ({{lo:Nullable(Int64)}} IS NULL OR time_ns >= {{lo:Nullable(Int64)}})
              AND ({{hi:Nullable(Int64)}} IS NULL OR time_ns < {{hi:Nullable(Int64)}})
            ORDER BY time_ns DESC, score DESC, series LIMIT {{limit:Int64}}
            """, {"service": service or "", "host": host or "", "layer": layer or "",  # noqa: S608
                  "signal": signal or "", "min": min_score, "lo": since_ns, "hi": until_ns,
                  "limit": limit})
        found: list[dict[str, Any]] = table.to_pylist()
        return found

    def scored_until(self) -> int | None:
        """The stored scoring watermark (None: never scored)."""
        found = rows(self._engine.query(
            "SELECT max(set_ns), count() FROM strata_meta WHERE key = {k:String}",
            {"k": WATERMARK_KEY}))
        return int(found[0][0]) if found and found[0][1] else None

    def span_resources(self, trace_id: str) -> dict[str, str]:
        """span_id -> resource (JSON text) of every span of one trace."""
        found = rows(self._engine.query(
            "SELECT SpanId, toJSONString(ResourceAttributes) FROM otel_traces "
            "WHERE TraceId = {t:String}", {"t": trace_id}))
        return {str(s): str(r) for s, r in found}

    def samples_near(self, *, since_ns: int, until_ns: int,
                     hosts: Iterable[str]) -> list[Sample]:
        """``samples.samples_near``: infrastructure, serving and data samples in
        ``[since_ns, until_ns]`` whose host or service is one of *hosts*."""
        wanted = sorted(set(hosts))
        if not wanted:
            return []
        table = self._engine.query("""
            SELECT TimeNs, MetricName, nullIf(Attributes['strata.canonical'], '') AS canonical,
                   StrataLayer, MetricUnit, Value, nullIf(Host, '') AS host,
                   nullIf(Device, '') AS device, nullIf(ServiceName, '') AS service,
                   mapFilter((k, v) -> NOT startsWith(k, 'strata.'), Attributes) AS labels
            FROM strata_samples
            WHERE """ + _NEAR_HOSTS + """
              AND TimeUnix >= fromUnixTimestamp64Nano({lo:Int64})
              AND TimeUnix <= fromUnixTimestamp64Nano({hi:Int64})
            """, {"hosts": wanted, "lo": since_ns, "hi": until_ns})  # noqa: S608 - constants
        return [Sample(r["MetricName"], r["Value"], r["MetricUnit"], Layer(r["StrataLayer"]),
                       r["TimeNs"], dict(r["labels"]), r["canonical"], r["host"], r["device"],
                       r["service"]) for r in table.to_pylist()]

    def service_span_series(self, service: str, *, since_ns: int, until_ns: int,
                            step_ns: int) -> list[dict[str, Any]]:
        """``spans.service_span_series`` over ``otel_traces`` (a quantile or mean over no
        span is None, as on DuckDB)."""
        entry = "(ParentSpanId = '' OR lower(SpanKind) = 'server')"
        table = self._engine.query(f"""
            SELECT StartNs - StartNs % {{step:Int64}} AS t,
              countIf({entry}) AS requests,
              quantileExactInclusiveIf(0.5)(Duration, {entry}) / 1e9 AS latency_p50,
              quantileExactInclusiveIf(0.95)(Duration, {entry}) / 1e9 AS latency_p95,
              avgIf(if(StatusCode = 'Error', 1.0, 0.0), {entry}) AS error_ratio,
              quantileExactInclusiveIf(0.95)(Duration, StrataLayer = 'model') / 1e9
                AS model_latency_p95,
              quantileExactInclusiveIf(0.95)(Duration, StrataLayer = 'data') / 1e9
                AS retrieval_latency_p95,
              sumIf(InputTokens, StrataLayer = 'model') AS input_tokens,
              sumIf(OutputTokens, StrataLayer = 'model') AS output_tokens,
              sum(CostUsd) AS usd, sum(EnergyWh) AS energy_wh
            FROM otel_traces WHERE ServiceName = {{service:String}} AND {_IN_RANGE}
            GROUP BY t ORDER BY t
            """, {"step": step_ns, "service": service, "since": since_ns,  # noqa: S608
                  "until": until_ns})
        return [{k: None if isinstance(v, float) and v != v else v for k, v in row.items()}
                for row in table.to_pylist()]

    def service_targets(self, service: str, *, since_ns: int,
                        until_ns: int) -> list[SpanRecord]:
        """``spans.service_targets`` over ``otel_traces`` (attribute values as strings)."""
        extracts = ", ".join(f"SpanAttributes[{{k{i}:String}}], ResourceAttributes[{{k{i}:String}}]"
                             for i in range(len(TARGET_KEYS)))
        def has_key(prefix: str, column: str) -> str:
            return f"arrayExists(k -> startsWith(k, {{{prefix}:String}}), mapKeys({column}))"

        found = rows(self._engine.query(f"""
            SELECT DISTINCT nullIf(Host, ''), StrataLayer, nullIf(GenAiRequestModel, ''),
                   nullIf(GenAiResponseModel, ''), {extracts}
            FROM otel_traces
            WHERE ServiceName = {{service:String}} AND {_IN_RANGE}
              AND (GenAiRequestModel != '' OR GenAiResponseModel != ''
                   OR StrataLayer IN ('data', 'serving')
                   OR {has_key("gpu", "SpanAttributes")}
                   OR {has_key("gpu", "ResourceAttributes")}
                   OR {has_key("db", "SpanAttributes")})
            """, {"service": service, "since": since_ns, "until": until_ns,  # noqa: S608
                  "gpu": "gpu.", "db": "db.",
                  **{f"k{i}": k for i, k in enumerate(TARGET_KEYS)}}))
        out = []
        for i, (host, layer, request_model, response_model, *values) in enumerate(found):
            out.append(span_record({
                "trace_id": "", "span_id": str(i), "start_ns": since_ns, "end_ns": until_ns,
                "service": service, "layer": layer, "host": host,
                "request_model": request_model, "response_model": response_model,
                "attributes": {k: v for k, v in zip(TARGET_KEYS, values[0::2], strict=True)
                               if v},
                "resource": {k: v for k, v in zip(TARGET_KEYS, values[1::2], strict=True)
                             if v},
            }))
        return out

    def bucketed_samples(self, *, since_ns: int, until_ns: int, step_ns: int,
                         hosts: Iterable[str]) -> list[tuple[Sample, float, float]]:
        """``samples.bucketed_samples`` over the fleet's samples."""
        wanted = sorted(set(hosts))
        if not wanted:
            return []
        table = self._engine.query("""
            SELECT intDiv(TimeNs, {step:Int64}) * {step:Int64} AS t, MetricName,
                   nullIf(Attributes['strata.canonical'], '') AS canonical, StrataLayer,
                   MetricUnit, avg(Value) AS mean, nullIf(Host, '') AS host,
                   nullIf(Device, '') AS device, nullIf(ServiceName, '') AS service,
                   any(mapFilter((k, v) -> NOT startsWith(k, 'strata.'), Attributes)) AS labels,
                   max(Value) AS hi, max(Value) - min(Value) AS increase
            FROM strata_samples
            WHERE """ + _NEAR_HOSTS + """
              AND TimeUnix >= fromUnixTimestamp64Nano({since:Int64})
              AND TimeUnix < fromUnixTimestamp64Nano({until:Int64})
            GROUP BY t, MetricName, canonical, StrataLayer, MetricUnit, host, device, service,
                     sipHash128(Attributes)
            """, {"step": step_ns, "hosts": wanted, "since": since_ns,  # noqa: S608 - constants
                  "until": until_ns})
        return [(Sample(r["MetricName"], r["mean"], r["MetricUnit"], Layer(r["StrataLayer"]),
                        r["t"], dict(r["labels"]), r["canonical"], r["host"], r["device"],
                        r["service"]), float(r["hi"]), float(r["increase"]))
                for r in table.to_pylist()]

    def metric_series(self, *, since_ns: int, until_ns: int, layer: str | None = None,
                      name: str | None = None, labels: Mapping[str, str] | None = None,
                      max_series: int = 1000,
                      max_points: int = 10_000) -> tuple[list[dict[str, Any]], bool]:
        """``samples.metric_series`` over the fleet's samples.

        Raises:
            ValueError: an invalid label key.
        """
        conds, params = [], {}
        for i, (key, value) in enumerate(sorted((labels or {}).items())):
            params[f"lv{i}"] = value
            if key in _SAMPLE_COLUMNS:
                conds.append(f"{_SAMPLE_COLUMNS[key]} = {{lv{i}:String}}")
                continue
            check_label_key(key)
            params[f"lk{i}"] = key
            conds.append(f"Attributes[{{lk{i}:String}}] = {{lv{i}:String}}")
        table = self._engine.query(f"""
            SELECT MetricName AS name, nullIf(Attributes['strata.canonical'], '') AS canonical,
                   StrataLayer AS layer, MetricUnit AS unit, {_SAMPLE_COLUMNS["host"]} AS host,
                   {_SAMPLE_COLUMNS["device"]} AS device, {_SAMPLE_COLUMNS["service"]} AS service,
                   toJSONString(mapFilter((k, v) -> NOT startsWith(k, 'strata.'), Attributes))
                     AS labels,
                   count() AS n,
                   arraySlice(arrayReverseSort(p -> p.1, groupArray((TimeNs, Value))), 1,
                              {{max_points:Int64}}) AS latest,
                   arrayMap(p -> p.1, latest) AS t, arrayMap(p -> p.2, latest) AS v
            FROM strata_samples
            WHERE TimeUnix >= fromUnixTimestamp64Nano({{since:Int64}})
              AND TimeUnix < fromUnixTimestamp64Nano({{until:Int64}})
              AND ({{layer:Nullable(String)}} IS NULL OR StrataLayer = {{layer:Nullable(String)}})
              AND ({{name:Nullable(String)}} IS NULL OR MetricName = {{name:Nullable(String)}}
                   OR Attributes['strata.canonical'] = {{name:Nullable(String)}})
              AND {" AND ".join(["true", *conds])}
            GROUP BY name, canonical, layer, unit, host, device, service, labels
            ORDER BY name, host, device, service, labels LIMIT {{limit:Int64}}
            """, {**params, "since": since_ns, "until": until_ns, "layer": layer,  # noqa: S608
                  "name": name, "limit": max_series + 1, "max_points": max_points})
        found = table.to_pylist()
        truncated = len(found) > max_series
        series = []
        for row in found[:max_series]:
            truncated = truncated or row["n"] > max_points
            series.append({
                "name": row["name"], "canonical": row["canonical"], "layer": row["layer"],
                "unit": row["unit"], "host": row["host"], "device": row["device"],
                "service": row["service"], "labels": json.loads(row["labels"]),
                "points": list(zip(reversed(row["t"]), reversed(row["v"]), strict=True)),
            })
        return series, truncated

    def list_deployments(self, *, service: str | None = None, since_ns: int | None = None,
                         until_ns: int | None = None, limit: int = 500) -> list[tuple[Any, ...]]:
        """Rows (``DEPLOYMENT_COLUMNS``) matching every filter, newest first."""
        return rows(self._engine.query(f"""
            SELECT {DEPLOYMENT_COLUMNS} FROM strata_deployments FINAL
            WHERE ({{service:Nullable(String)}} IS NULL OR service = {{service:Nullable(String)}})
              AND ({{lo:Nullable(Int64)}} IS NULL OR time_ns >= {{lo:Nullable(Int64)}})
              AND ({{hi:Nullable(Int64)}} IS NULL OR time_ns < {{hi:Nullable(Int64)}})
            ORDER BY time_ns DESC, service LIMIT {{limit:Int64}}
            """, {"service": service, "lo": since_ns, "hi": until_ns,  # noqa: S608
                  "limit": limit}))

    def cost_report(self, *, group_by: str, since_ns: int, until_ns: int,
                    bucket_ns: int | None = None,
                    filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """``costs.cost_report`` over ``otel_traces`` (aggregated by ClickHouse).

        Raises:
            ValueError: an invalid group or filter key, or a bucket that is not positive.
        """
        if bucket_ns is not None and bucket_ns <= 0:
            msg = f"bucket must be positive, got {bucket_ns} ns"
            raise ValueError(msg)
        group, params = _group_sql(group_by, "g")
        where = [_IN_RANGE]
        for i, (key, value) in enumerate(sorted((filters or {}).items())):
            sql, key_params = _group_sql(key, f"fk{i}_")
            params.update(key_params)
            params[f"fv{i}"] = value
            where.append(f"{sql} = {{fv{i}:String}}")
        bucket = "{since:Int64}" if bucket_ns is None else "StartNs - StartNs % {bucket:Int64}"
        table = self._engine.query(
            f"SELECT {bucket} AS bucket_ns, {group} AS group, {_AGGREGATES} "  # noqa: S608
            f"FROM otel_traces WHERE {' AND '.join(where)} GROUP BY bucket_ns, group "
            "ORDER BY bucket_ns, group NULLS LAST",
            {**params, "since": since_ns, "until": until_ns, "bucket": bucket_ns or 1})
        out = []
        for row in table.to_pylist():
            item = {"bucket_ns": int(row["bucket_ns"]), "group": row["group"]}
            item.update({m: row[m] for m in MEASURES})
            for m in ("requests", "priced_requests", "energy_requests", "co2e_requests"):
                item[m] = int(item[m] or 0)
            out.append(item)
        return out

    def gpu_hourly_usage(self, *, since_ns: int, until_ns: int) -> list[tuple[Any, ...]]:
        """``costs.gpu_hourly_usage`` over the fleet's samples (per host and GPU)."""
        return rows(self._engine.query("""
            WITH util AS (
              SELECT Host AS host, Device AS device,
                     intDiv(TimeNs, {h:Int64}) * {h:Int64} AS hour_ns,
                     avg(if(MetricUnit = '1', Value * 100, Value)) AS util
              FROM strata_samples WHERE Canonical = 'gpu.utilization' AND Host != ''
                AND Device != '' AND TimeUnix >= fromUnixTimestamp64Nano({since:Int64})
                AND TimeUnix < fromUnixTimestamp64Nano({until:Int64})
              GROUP BY host, device, hour_ns),
            power AS (
              SELECT Host AS host, Device AS device,
                     intDiv(TimeNs, {h:Int64}) * {h:Int64} AS hour_ns,
                     avg(Value) AS power_w
              FROM strata_samples WHERE Canonical = 'gpu.power.draw' AND MetricUnit = 'W'
                AND Host != '' AND Device != ''
                AND TimeUnix >= fromUnixTimestamp64Nano({since:Int64})
                AND TimeUnix < fromUnixTimestamp64Nano({until:Int64})
              GROUP BY host, device, hour_ns),
            energy AS (
              SELECT host, device, intDiv(t, {h:Int64}) * {h:Int64} AS hour_ns, unit,
                     sum(if(d >= 0, d, value)) AS inc
              FROM (SELECT Host AS host, Device AS device, TimeNs AS t, MetricUnit AS unit,
                           Value AS value,
                           value - lagInFrame(toNullable(Value)) OVER (
                               PARTITION BY Host, Device ORDER BY TimeNs
                               ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS d
                    FROM strata_samples WHERE Canonical = 'gpu.energy.consumed'
                      AND Host != '' AND Device != ''
                      AND TimeUnix >= fromUnixTimestamp64Nano({since:Int64})
                      AND TimeUnix < fromUnixTimestamp64Nano({until:Int64}))
              WHERE d IS NOT NULL
              GROUP BY host, device, hour_ns, unit)
            SELECT util.host, util.device, util.hour_ns, util.util, power.power_w, energy.inc,
                   energy.unit
            FROM util LEFT JOIN power USING (host, device, hour_ns)
                      LEFT JOIN energy USING (host, device, hour_ns)
            ORDER BY 1, 2, 3
            SETTINGS join_use_nulls = 1
            """, {"h": HOUR_NS, "since": since_ns, "until": until_ns}))

    def model_usage(self, *, since_ns: int, until_ns: int, max_input_tokens: int,
                    max_output_tokens: int) -> list[tuple[Any, ...]]:
        """``costs.model_usage`` over ``otel_traces``."""
        small = "InputTokens <= {max_in:Int64} AND OutputTokens <= {max_out:Int64}"
        cache = "coalesce(toInt64OrNull(SpanAttributes['gen_ai.usage.cache_read.input_tokens']), 0)"
        return rows(self._engine.query(f"""
            SELECT ServiceName, nullIf(GenAiProvider, '') AS provider, {_MODEL} AS model,
                   count(), sum(CostUsd), countIf({small}),
                   coalesce(sumIf(InputTokens, {small}), 0), sumIf({cache}, {small}),
                   coalesce(sumIf(OutputTokens, {small}), 0), coalesce(sumIf(CostUsd, {small}), 0)
            FROM otel_traces
            WHERE {_COST_SOURCE} = 'token_price' AND {_IN_RANGE}
              AND InputTokens IS NOT NULL AND OutputTokens IS NOT NULL
            GROUP BY ServiceName, provider, model ORDER BY 1, 2, 3
            """, {"since": since_ns, "until": until_ns, "max_in": max_input_tokens,  # noqa: S608
                  "max_out": max_output_tokens}))

    def coverage_by_service(self, *, since_ns: int, until_ns: int) -> list[tuple[Any, ...]]:
        """``costs.coverage_by_service`` over ``otel_traces``."""
        return rows(self._engine.query(f"""
            SELECT ServiceName, count(),
                   countIf(CostUsd IS NOT NULL AND {_COST_SOURCE} = 'token_price'),
                   countIf(CostUsd IS NOT NULL AND {_COST_SOURCE} = 'gpu_time'),
                   countIf(CostUsd IS NOT NULL AND {_COST_SOURCE} = 'gpu_time_estimated'),
                   countIf(CostUsd IS NULL),
                   countIf(EnergyWh IS NOT NULL AND {_ENERGY_SOURCE} = 'measured'),
                   countIf(EnergyWh IS NOT NULL AND {_ENERGY_SOURCE} = 'estimated'),
                   countIf(EnergyWh IS NULL)
            FROM otel_traces WHERE {_IN_RANGE} AND {_REQUEST}
            GROUP BY ServiceName ORDER BY ServiceName
            """, {"since": since_ns, "until": until_ns}))  # noqa: S608

    def unknown_energy_groups(self, *, since_ns: int, until_ns: int,
                              limit: int) -> list[tuple[Any, ...]]:
        """``costs.unknown_energy_groups`` over ``otel_traces``."""
        found = rows(self._engine.query(f"""
            SELECT ServiceName AS service, nullIf(GenAiProvider, '') AS provider,
                   {_MODEL} AS model,
                   lower(coalesce(nullIf(SpanAttributes['server.address'], ''),
                                  nullIf(SpanAttributes['net.peer.name'], ''))) AS address,
                   nullIf(SpanAttributes['server.port'], '') AS port, nullIf(Host, '') AS host,
                   count() AS n, max(OutputTokens IS NOT NULL)
            FROM otel_traces WHERE {_IN_RANGE} AND {_REQUEST} AND EnergyWh IS NULL
            GROUP BY service, provider, model, address, port, host
            ORDER BY n DESC, service, model NULLS LAST LIMIT {{limit:Int64}}
            """, {"since": since_ns, "until": until_ns, "limit": limit}))  # noqa: S608
        return [(*row[:6], int(row[6]), bool(row[7])) for row in found]

    def gpu_inventory(self, *, since_ns: int, until_ns: int,
                      energy_signal: str) -> list[tuple[str, str, str | None, str | None, bool]]:
        return gpu_energy.gpu_inventory(self._engine, since_ns=since_ns, until_ns=until_ns,
                                        energy_signal=energy_signal)

    def gpu_energy_summary(self, *, since_ns: int, until_ns: int) -> list[dict[str, Any]]:
        return gpu_energy.gpu_energy_summary(self._engine, since_ns=since_ns,
                                             until_ns=until_ns)
