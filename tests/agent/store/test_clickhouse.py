"""strata.agent.store.clickhouse on chdb (ClickHouse's own engine, in-process): the schema,
the writes, and every window read giving exactly the rows DuckDB gives on the same data."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from strata.agent.model import (
    Deployment,
    Incident,
    IncidentEvent,
    Layer,
    LogRecord,
    SuspectedCause,
)
from strata.agent.store.clickhouse.engine import ChdbEngine, ClickHouseError, HttpEngine, rows
from strata.agent.store.clickhouse.store import ClickHouseStore
from strata.agent.store.db import DuckDBStore
from strata.agent.store.seam import DuckDBReads

from tests.agent.store.rows import HOUR, MIN, T0, TRACE_B, S, sample, span

SEP = "\x1f"
CHANGE = T0 + 10 * MIN


@pytest.fixture(name="chdb")
def chdb_fixture(tmp_path: Path) -> Iterator[ClickHouseStore]:
    store = ClickHouseStore(ChdbEngine(tmp_path / "ch"))  # one chdb directory per process
    yield store
    store.close()


def _data() -> tuple[list[Any], list[Any], list[Deployment]]:
    """Two versions of rag-api around CHANGE (a failing tool call after it, stored costs on
    some spans), another service on a GPU host, GPU samples with labels and clock reasons."""
    spans = []
    for i, (minute, version) in enumerate([(1, "1.0"), (5, "1.0"), (9, "1.0"), (11, "1.1"),
                                           (12, "1.0"), (13, "1.1")]):
        root, start = f"r{i}", minute * 60
        spans += [
            span(root, start, start + 3, name="invoke_agent rag", service="rag-api",
                 service_version=version, operation="invoke_agent", team="search",
                 layer=Layer.ORCHESTRATION),
            span(f"c{i}", start + 1, start + 2 + i / 10, parent_span_id=root,
                 name="chat gpt-4o", service="rag-api", service_version=version,
                 operation="chat", input_tokens=100 + i, output_tokens=10 + i,
                 provider="openai", request_model="gpt-4o", team="search",
                 attributes={"server.address": "api.openai.com"}),
        ]
    spans.append(span("t3", 11 * 60 + 2, 11 * 60 + 2.5, parent_span_id="r3",
                      name="execute_tool search", service="rag-api", service_version="1.1",
                      operation="execute_tool", status="error", error_type="Timeout",
                      layer=Layer.ORCHESTRATION))
    spans.append(span("x", 11 * 60, 11 * 60 + 1, trace=TRACE_B, service="other",
                      service_version="1.1", operation="chat", host="gpu-node-1",
                      response_model="llama", output_tokens=5, status="error"))
    samples = [sample("DCGM_FI_DEV_GPU_TEMP", 60 + t, t * 30, canonical="gpu.temperature",
                      host="gpu-node-1", device="GPU-1", attributes={"modelName": "H100"})
               for t in range(10)]
    samples += [sample("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", float(v), t * 30,
                       canonical="gpu.clock_event_reasons", host="gpu-node-1", device="GPU-1")
                for t, v in enumerate([0, 32, 32, 0, 8, 40])]
    samples += [sample("vllm:num_requests_waiting", 2.0, 90, layer=Layer.SERVING,
                       service="vllm"),
                sample("request_duration_bucket", 1.0, 90, layer=Layer.SERVING)]
    deployments = [Deployment("rag-api", CHANGE, "1.1", "1.0", source="service.version")]
    return spans, samples, deployments


@pytest.fixture(name="both")
def both_fixture(store: DuckDBStore, chdb: ClickHouseStore) -> tuple[Any, Any]:
    spans, samples, deployments = _data()
    costs = [(0.01 * i, "list_price", None, None, None) if i % 3 == 0 else (None,) * 5
             for i in range(len(spans))]
    for target in (store, chdb):  # in two inserts: ClickHouse's rollups merge two parts
        target.write_batch(spans[::2], samples[::2], deployments, received_ns=1,
                           costs=costs[::2])
        target.write_batch(spans[1::2], samples[1::2], received_ns=1, costs=costs[1::2])
    return DuckDBReads(store), chdb.window_reads()


def _plain(value: Any) -> Any:
    if value is np.ma.masked or value is None:
        return None
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and math.isnan(value) else value


def _rows(cols: dict[str, Any]) -> list[tuple[Any, ...]]:
    names = list(cols)
    return sorted((tuple(_plain(cols[n][i]) for n in names) for i in range(len(cols[names[0]]))),
                  key=repr)


WINDOW = {"start_ns": T0, "end_ns": T0 + HOUR}
BUCKETS = {**WINDOW, "bucket_ns": MIN, "sep": SEP}


def test_span_bucket_stats_equal_duckdb(both: tuple[Any, Any]) -> None:
    duck, ch = both
    expected = _rows(duck.span_bucket_stats(**BUCKETS))
    assert _rows(ch.span_bucket_stats(**BUCKETS)) == expected
    # the all-failed bucket of "other" has no latency on either engine
    other = [r for r in expected if r[1].startswith("other")]
    assert other == [(T0 + 11 * MIN, f"other{SEP}model{SEP}chat{SEP}", 1, 1, None, None, 0, 5,
                      1, None, 0)]


def test_model_usage_and_dependencies_equal_duckdb(both: tuple[Any, Any]) -> None:
    duck, ch = both
    assert _rows(ch.model_bucket_usage(**BUCKETS)) == _rows(duck.model_bucket_usage(**BUCKETS))
    deps = ch.service_dependencies(**WINDOW)
    assert deps == duck.service_dependencies(**WINDOW)
    assert deps == [("other", "gpu-node-1"), ("rag-api", "api.openai.com")]


@pytest.mark.parametrize("canonicals", [None, ("gpu.temperature",), ()])
def test_sample_bucket_stats_equal_duckdb(both: tuple[Any, Any],
                                          canonicals: tuple[str, ...] | None) -> None:
    duck, ch = both
    got = _rows(ch.sample_bucket_stats(**BUCKETS, canonicals=canonicals))
    want = _rows(duck.sample_bucket_stats(**BUCKETS, canonicals=canonicals))
    assert got == want
    if canonicals is None:  # histogram parts are left out
        assert not any("request_duration_bucket" in r[1] for r in got)


def test_clock_reasons_deployments_and_time_range_equal_duckdb(both: tuple[Any, Any]) -> None:
    duck, ch = both
    args = {**BUCKETS, "mask": 32}
    assert _rows(ch.clock_reason_fractions(**args)) == _rows(duck.clock_reason_fractions(**args))
    assert ch.deployments_between(T0, T0 + HOUR) == duck.deployments_between(T0, T0 + HOUR)
    assert ch.event_time_range() == duck.event_time_range() == (T0, T0 + 13 * MIN + S)


@pytest.mark.parametrize("versions", [("1.0", "1.1"), (None, None)])
def test_request_reads_equal_duckdb(both: tuple[Any, Any],
                                    versions: tuple[str | None, str | None]) -> None:
    duck, ch = both
    args = {"change_ns": CHANGE, "until_ns": T0 + HOUR, "lookback_ns": HOUR,
            "old_version": versions[0], "new_version": versions[1], "limit": 2}
    assert _rows(ch.requests_around("rag-api", **args)) == \
        _rows(duck.requests_around("rag-api", **args))
    thin = {**WINDOW, "max_requests": 3}
    assert _rows(ch.thin_requests(**thin)) == _rows(duck.thin_requests(**thin))


def test_window_reads_of_whole_minutes_come_from_the_rollups(
        both: tuple[Any, Any], chdb: ClickHouseStore) -> None:
    ch = both[1]
    per_minute = {"span": ch.span_bucket_stats(**BUCKETS),
                  "model": ch.model_bucket_usage(**BUCKETS),
                  "sample": ch.sample_bucket_stats(**BUCKETS, canonicals=None),
                  "reasons": ch.clock_reason_fractions(**BUCKETS, mask=32),
                  "dependencies": ch.service_dependencies(**WINDOW)}
    for table in ("otel_traces", "otel_metrics_gauge"):
        chdb.engine.command(f"TRUNCATE TABLE {table}")
    assert _rows(ch.span_bucket_stats(**BUCKETS)) == _rows(per_minute["span"])
    assert _rows(ch.model_bucket_usage(**BUCKETS)) == _rows(per_minute["model"])
    assert _rows(ch.sample_bucket_stats(**BUCKETS, canonicals=None)) == \
        _rows(per_minute["sample"])
    assert _rows(ch.clock_reason_fractions(**BUCKETS, mask=32)) == _rows(per_minute["reasons"])
    assert ch.service_dependencies(**WINDOW) == per_minute["dependencies"]
    # other bucket widths group the raw rows, which are gone
    assert len(ch.span_bucket_stats(**{**BUCKETS, "bucket_ns": 30 * S})["bucket"]) == 0


def test_reads_of_part_minutes_group_the_raw_rows(both: tuple[Any, Any]) -> None:
    duck, ch = both
    args = {**BUCKETS, "bucket_ns": 30 * S}
    assert _rows(ch.span_bucket_stats(**args)) == _rows(duck.span_bucket_stats(**args))
    assert _rows(ch.model_bucket_usage(**args)) == _rows(duck.model_bucket_usage(**args))
    assert _rows(ch.sample_bucket_stats(**args, canonicals=None)) == \
        _rows(duck.sample_bucket_stats(**args, canonicals=None))
    assert _rows(ch.clock_reason_fractions(**args, mask=8)) == \
        _rows(duck.clock_reason_fractions(**args, mask=8))
    part = {"start_ns": T0 + 30 * S, "end_ns": T0 + HOUR}
    assert ch.service_dependencies(**part) == duck.service_dependencies(**part)
    assert _rows(ch.thin_requests(**part, max_requests=3)) == \
        _rows(duck.thin_requests(**part, max_requests=3))


def test_cost_by_team_sums_stored_costs(both: tuple[Any, Any], chdb: ClickHouseStore) -> None:
    # spans 0, 3, 6, 9 (rag-api, team search) and 12 (other, no team) carry a stored cost
    assert chdb.cost_by_team(T0, T0 + HOUR) == [
        ("search", 12, pytest.approx(0.18)), ("", 2, pytest.approx(0.12))]


def test_collector_rows_are_read_through_the_semantic_conventions(chdb: ClickHouseStore) -> None:
    """A span as the Collector's exporter writes it (no Strata keys) is still a model span."""
    chdb.engine.command(
        "INSERT INTO otel_traces (Timestamp, TraceId, SpanId, SpanName, ServiceName, "
        "ResourceAttributes, SpanAttributes, Duration, StatusCode) VALUES "
        "(fromUnixTimestamp64Nano({t:Int64}), 't', 's', 'chat m', 'svc', "
        "map('service.version', '2.0', 'host.name', 'n1'), "
        "map('gen_ai.operation.name', 'chat', 'gen_ai.system', 'openai', "
        "'gen_ai.usage.output_tokens', '7'), 2000000000, 'Ok')", {"t": T0})
    cols = _rows(chdb.window_reads().span_bucket_stats(**BUCKETS))
    assert cols == [(T0, f"svc{SEP}model{SEP}chat{SEP}", 1, 0, 2.0, 2.0, 0, 7, 1, None, 0)]
    assert chdb.window_reads().service_dependencies(**WINDOW) == [("svc", "n1")]


def test_incident_book_keeps_the_latest_version_once(chdb: ClickHouseStore) -> None:
    inc = Incident(id="inc-1", kind="latency", layer="model", service="svc", host=None,
                   status="open", severity="warning", started_at_ns=T0, detected_at_ns=T0 + 1,
                   resolved_at_ns=None, summary="slow", evidence=(),
                   suspected_cause=SuspectedCause("model", "latency", "moved first"),
                   suggestion=None)
    with chdb.incident_book() as book:
        book.insert_incident(inc, 1)
        book.insert_incident(inc, 1)  # a second analyser writing the same incident
        event = IncidentEvent(T0, "opened", "slow")
        assert book.add_events("inc-1", [event, event]) == 1
        assert book.add_events("inc-1", [event]) == 0
        book.update_incident(replace(inc, status="resolved", resolved_at_ns=T0 + 2), 2)
        assert book.open_incidents_between(T0, T0 + HOUR) == []
        got = book.get_incident("inc-1")
        assert got is not None
        assert (got.status, got.events) == ("resolved", (event,))
        assert book.get_incident("nope") is None
    assert chdb.counts()["incidents"] == 1


def test_engine_errors_name_the_reason(chdb: ClickHouseStore) -> None:
    with pytest.raises(ClickHouseError, match="nosuch"):
        chdb.engine.query("SELECT * FROM nosuch")
    with pytest.raises(ClickHouseError, match="cannot reach ClickHouse"):
        HttpEngine("http://127.0.0.1:9", connect_timeout_s=1)


def test_a_sidecars_enrichment_is_kept_unless_priced_here(chdb: ClickHouseStore) -> None:
    enriched = {"gen_ai.usage.cost.usd": 0.25, "strata.energy.wh": 0.5}
    spans = [span("a", 1, 2, operation="chat", team="t1", attributes=enriched),
             span("b", 1, 2, operation="chat", team="t2", attributes=enriched)]
    chdb.write_batch(spans[:1])  # as the hub's receiver writes a forwarded span
    chdb.write_batch(spans[1:], costs=[(0.5, "list_price", None, None, None)])
    assert chdb.cost_by_team(T0, T0 + HOUR) == [("t2", 1, 0.5), ("t1", 1, 0.25)]
    energy = rows(chdb.engine.query("SELECT Team, EnergyWh FROM otel_traces ORDER BY Team"))
    assert energy == [("t1", 0.5), ("t2", None)]


def test_cost_by_team_adds_partial_hours_to_the_hourly_rollup(chdb: ClickHouseStore) -> None:
    starts = [-30 * 60, 10 * 60, 65 * 60]  # seconds from T0, an hour boundary
    spans = [span(f"s{i}", t, t + 1, operation="chat", team="a") for i, t in enumerate(starts)]
    chdb.write_batch(spans, costs=[(1.0 * 10**i, "list_price", None, None, None)
                                   for i in range(3)])
    assert chdb.cost_by_team(T0 - 45 * MIN, T0 + 70 * MIN) == [("a", 3, 111.0)]
    assert chdb.cost_by_team(T0 - 20 * MIN, T0 + HOUR) == [("a", 1, 10.0)]
    assert chdb.cost_by_team(T0 + 5 * MIN, T0 + 15 * MIN) == [("a", 1, 10.0)]
    assert chdb.cost_by_team(T0 + 70 * MIN, T0 + 80 * MIN) == []


def test_log_records_land_in_otel_logs(chdb: ClickHouseStore) -> None:
    logs = [LogRecord(T0, "rag-api", 17, "ERROR", None, "a" * 32, "b" * 16, "boom",
                      "TimeoutError", {"exception.message": "[redacted]"}, {"host.name": "n1"}),
            LogRecord(T0 + MIN, "rag-api", 9, "INFO", "gen_ai.choice", span_event=True)]
    chdb.write_batch(logs=logs)
    got = rows(chdb.engine.query(
        "SELECT toUnixTimestamp64Nano(Timestamp), TraceId, SpanId, SeverityText, SeverityNumber,"
        " ServiceName, Body, EventName, LogAttributes['exception.type'],"
        " LogAttributes['strata.span_event'], ResourceAttributes['host.name']"
        " FROM otel_logs ORDER BY Timestamp"))
    assert [tuple(r) for r in got] == [
        (T0, "a" * 32, "b" * 16, "ERROR", 17, "rag-api", "boom", "", "TimeoutError", "", "n1"),
        (T0 + MIN, "", "", "INFO", 9, "rag-api", "", "gen_ai.choice", "", "true", ""),
    ]
