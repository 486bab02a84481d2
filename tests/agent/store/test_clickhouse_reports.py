"""The API's reads (``seam.ReportReads``) and incident filters on ClickHouse (chdb) give
exactly the rows DuckDB gives on the same data."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from strata.agent.config import Settings
from strata.agent.finops.gpu import apply_gpu_attribution
from strata.agent.model import Incident, LogRecord
from strata.agent.store.clickhouse.engine import ChdbEngine
from strata.agent.store.clickhouse.store import ClickHouseStore
from strata.agent.store.db import DuckDBStore
from strata.agent.store.seam import DuckDBReports, ReportReads, incident_book

from tests.agent.store.rows import HOUR, MIN, T0, TRACE_A, TRACE_B, sample, span
from tests.agent.store.test_clickhouse import _data

RANGE = {"since_ns": T0, "until_ns": T0 + HOUR}


@pytest.fixture(name="chdb")
def chdb_fixture(tmp_path: Path) -> Iterator[ClickHouseStore]:
    store = ClickHouseStore(ChdbEngine(tmp_path / "ch"))
    yield store
    store.close()


@pytest.fixture(name="both")
def both_fixture(store: DuckDBStore, chdb: ClickHouseStore) -> tuple[ReportReads, ReportReads]:
    spans, samples, deployments = _data()
    spans = [replace(s, attributes={**s.attributes, "user.id": f"u{i % 2}"}) if i % 4 else s
             for i, s in enumerate(spans)]
    costs = [((0.01 * i, "token_price", 0.1 * i, "estimated", 0.02 * i) if i % 3 == 0 else
              (None, None, 0.5, "measured", 0.1) if i % 3 == 1 else (None,) * 5)
             for i in range(len(spans))]
    logs = [LogRecord(T0 + 2 * MIN, "rag-api", 17, "ERROR", None, TRACE_A, "c1", "boom",
                      "Timeout", {"k": "v"}),
            LogRecord(T0 + MIN, "rag-api", 9, "INFO", "gen_ai.choice", TRACE_A, "c0", "hi",
                      span_event=True)]
    for target in (store, chdb):
        target.write_batch(spans, samples, deployments, received_ns=1, costs=costs, logs=logs)
    return DuckDBReports(store), chdb.report_reads()


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9)
    return bool(a == b)


def _same(duck: list[dict[str, Any]], ch: list[dict[str, Any]]) -> None:
    assert len(duck) == len(ch)
    for d, c in zip(duck, ch, strict=True):
        assert d.keys() == c.keys()
        for key in d:
            assert _close(d[key], c[key]), (key, d, c)


def test_trace_list_and_detail(both: tuple[ReportReads, ReportReads]) -> None:
    duck, ch = both
    for filters in ({}, {"service": "rag-api"}, {"model": "llama"}, {"status": "error"},
                    {"min_duration_ns": 2_000_000_000, "since_ns": T0 + 5 * MIN},
                    {"until_ns": T0 + 6 * MIN, "limit": 1}):
        found = ch.list_traces(**filters)  # type: ignore[arg-type]
        _same(duck.list_traces(**filters), found)  # type: ignore[arg-type]
    assert [t["trace_id"] for t in ch.list_traces()] == [TRACE_B, TRACE_A]  # newest first
    for trace in (TRACE_A, TRACE_B):
        duck_spans, ch_spans = duck.trace_spans(trace), ch.trace_spans(trace)
        for d, c in zip(duck_spans, ch_spans, strict=True):
            # the Collector's maps hold strings, and the promoted GenAI keys as well
            assert {k: str(v) for k, v in d.pop("attributes").items()}.items() <= (
                c.pop("attributes").items())
        _same(duck_spans, ch_spans)
    assert ch.trace_spans("f" * 32) == []
    assert ch.trace_logs(TRACE_A) == duck.trace_logs(TRACE_A)
    assert [r["event_name"] for r in ch.trace_logs(TRACE_A)] == ["gen_ai.choice", None]


def test_deployments(both: tuple[ReportReads, ReportReads]) -> None:
    duck, ch = both
    for filters in ({}, {"service": "rag-api"}, {"service": "other"},
                    {"since_ns": T0 + 11 * MIN}, {"until_ns": T0 + 11 * MIN, "limit": 1}):
        assert ch.list_deployments(**filters) == duck.list_deployments(**filters)  # type: ignore[arg-type]
    assert len(ch.list_deployments()) == 1


@pytest.mark.parametrize(("group_by", "bucket_ns", "filters"), [
    ("service", None, {}),
    ("team", None, {}),
    ("model", 5 * MIN, {}),
    ("provider", None, {"service": "rag-api"}),
    ("host", None, {}),
    ("operation", HOUR, {}),
    ("service_version", None, {"user": "u1"}),
    ("layer", None, {}),
    ("user", 10 * MIN, {}),
    ("server.address", None, {"team": "search"}),
])
def test_cost_report(both: tuple[ReportReads, ReportReads], group_by: str,
                     bucket_ns: int | None, filters: dict[str, str]) -> None:
    duck, ch = both
    expected = duck.cost_report(group_by=group_by, bucket_ns=bucket_ns, filters=filters, **RANGE)
    assert expected  # the case has data
    _same(expected, ch.cost_report(group_by=group_by, bucket_ns=bucket_ns, filters=filters,
                                   **RANGE))


def test_cost_report_refuses_bad_keys_and_buckets(both: tuple[ReportReads, ReportReads]) -> None:
    _, ch = both
    with pytest.raises(ValueError, match="group_by/filter"):
        ch.cost_report(group_by="x' OR 1=1 --", **RANGE)
    with pytest.raises(ValueError, match="group_by/filter"):
        ch.cost_report(group_by="service", filters={"a b": "x"}, **RANGE)
    with pytest.raises(ValueError, match="positive"):
        ch.cost_report(group_by="service", bucket_ns=0, **RANGE)


def test_coverage(both: tuple[ReportReads, ReportReads]) -> None:
    duck, ch = both
    expected = duck.coverage_by_service(**RANGE)
    assert expected == [("other", 1, 0, 0, 0, 1, 1, 0, 0), ("rag-api", 11, 5, 0, 0, 6, 4, 5, 2)]
    assert ch.coverage_by_service(**RANGE) == expected


def test_incident_filters(store: DuckDBStore, chdb: ClickHouseStore) -> None:
    incidents = [Incident(id=f"i{n}", kind=kind, layer="model", service=service, host=None,
                          status=status, severity="warning", started_at_ns=T0 + n * MIN,
                          detected_at_ns=T0 + n * MIN, resolved_at_ns=None, summary="s",
                          evidence=(), suspected_cause=None, suggestion=None)
                 for n, (kind, service, status) in enumerate([
                     ("latency_regression", "a", "open"), ("error_spike", "a", "resolved"),
                     ("error_spike", "b", "open"), ("cost_spike", None, "acknowledged")])]
    for target in (store, chdb):
        with incident_book(target) as book:
            for incident in incidents:
                book.insert_incident(incident, 1)
    for filters in ({}, {"status": "open"}, {"service": "a"}, {"kind": "error_spike"},
                    {"since_ns": T0 + MIN}, {"until_ns": T0 + 2 * MIN}, {"limit": 2},
                    {"kind": "error_spike", "status": "open", "service": "b"}):
        with incident_book(store) as book:
            expected = [i.id for i in book.list_incidents(**filters)]  # type: ignore[arg-type]
        with incident_book(chdb) as book:
            assert [i.id for i in book.list_incidents(**filters)] == expected, filters  # type: ignore[arg-type]
    with incident_book(chdb) as book:
        assert [i.id for i in book.list_incidents(kind="error_spike")] == ["i2", "i1"]


def test_layer_samples_near_spans(both: tuple[ReportReads, ReportReads]) -> None:
    duck, ch = both
    for hosts in (["gpu-node-1"], ["vllm", "gpu-node-1"], ["nowhere"], []):
        window = {"since_ns": T0, "until_ns": T0 + 2 * MIN, "hosts": hosts}
        expected = sorted(duck.samples_near(**window), key=repr)  # type: ignore[arg-type]
        assert sorted(ch.samples_near(**window), key=repr) == expected  # type: ignore[arg-type]
    near = ch.samples_near(since_ns=T0, until_ns=T0 + 2 * MIN, hosts=["vllm", "gpu-node-1"])
    assert sorted({(s.canonical or s.name, s.host, s.service) for s in near}) == [
        ("gpu.clock_event_reasons", "gpu-node-1", None),
        ("gpu.temperature", "gpu-node-1", None),
        ("vllm:num_requests_waiting", None, "vllm")]
    resources = ch.span_resources(TRACE_B)
    assert list(resources) == ["x"]
    assert '"service.name":"other"' in resources["x"]
    assert duck.span_resources(TRACE_B).keys() == resources.keys()


def test_rightsizing_reads(both: tuple[ReportReads, ReportReads], store: DuckDBStore,
                           chdb: ClickHouseStore) -> None:
    """GPU hours (utilisation as a ratio or percent, power, an energy counter that resets)
    and token-priced model usage."""
    gpu = [sample("DCGM_FI_DEV_GPU_UTIL", 40.0 + t, t * 600, canonical="gpu.utilization",
                  unit="%", host="n1", device="GPU-1") for t in range(8)]
    gpu += [sample("util_ratio", 0.25, t * 900, canonical="gpu.utilization", host="n2",
                   device="GPU-2") for t in range(3)]
    gpu += [sample("DCGM_FI_DEV_POWER_USAGE", 300.0 + t, t * 600, canonical="gpu.power.draw",
                   unit="W", host="n1", device="GPU-1") for t in range(8)]
    gpu += [sample("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", v, t * 600,
                   canonical="gpu.energy.consumed", unit="mJ", host="n1", device="GPU-1")
            for t, v in enumerate([1e6, 2e6, 3.5e6, 1e5, 9e5, 2e6, 3e6, 4e6])]
    for target in (store, chdb):
        target.write_batch(samples=gpu, received_ns=1)
    duck, ch = both
    window = {"since_ns": T0, "until_ns": T0 + 2 * HOUR}
    expected = duck.gpu_hourly_usage(**window)
    assert [(h, d, t) for h, d, t, *_ in expected] == [("n1", "GPU-1", T0), ("n1", "GPU-1",
                                                        T0 + HOUR), ("n2", "GPU-2", T0)]
    found = ch.gpu_hourly_usage(**window)
    assert [r[:3] for r in found] == [r[:3] for r in expected]
    for f, e in zip(found, expected, strict=True):
        assert all(_close(a, b) for a, b in zip(f[3:], e[3:], strict=True)), (f, e)
    limits = {"max_input_tokens": 103, "max_output_tokens": 20}
    usage = duck.model_usage(**RANGE, **limits)
    assert usage
    assert usage[0][3] > usage[0][5] > 0  # some requests are small, not all
    found = ch.model_usage(**RANGE, **limits)
    assert len(found) == len(usage)
    for f, e in zip(found, usage, strict=True):
        assert all(_close(a, b) for a, b in zip(f, e, strict=True)), (f, e)


def test_timeline_reads(both: tuple[ReportReads, ReportReads]) -> None:
    duck, ch = both
    for service, step in (("rag-api", 2 * MIN), ("other", MIN), ("nobody", MIN)):
        window = {"since_ns": T0, "until_ns": T0 + HOUR, "step_ns": step}
        _same(duck.service_span_series(service, **window),
              ch.service_span_series(service, **window))
    series = ch.service_span_series("rag-api", since_ns=T0, until_ns=T0 + HOUR, step_ns=HOUR)
    assert (series[0]["requests"], series[0]["retrieval_latency_p95"]) == (6, None)
    # distinct targets: attribute values are strings on ClickHouse, typed on DuckDB
    for service in ("rag-api", "other"):
        found = ch.service_targets(service, since_ns=T0, until_ns=T0 + HOUR)
        expected = duck.service_targets(service, since_ns=T0, until_ns=T0 + HOUR)
        assert sorted((s.host, s.layer, s.model, sorted(s.attributes.items()))
                      for s in found) == sorted(
            (s.host, s.layer, s.model, sorted((k, str(v)) for k, v in s.attributes.items()))
            for s in expected)
    assert [s.host for s in ch.service_targets("other", since_ns=T0, until_ns=T0 + HOUR)] == [
        "gpu-node-1"]
    for hosts in (["gpu-node-1", "vllm"], []):
        window = {"since_ns": T0, "until_ns": T0 + HOUR, "step_ns": 2 * MIN, "hosts": hosts}
        expected = sorted(duck.bucketed_samples(**window), key=repr)  # type: ignore[arg-type]
        assert sorted(ch.bucketed_samples(**window), key=repr) == expected  # type: ignore[arg-type]
    clock = [r for r in ch.bucketed_samples(since_ns=T0, until_ns=T0 + HOUR, step_ns=2 * MIN,
                                            hosts=["gpu-node-1"])
             if r[0].canonical == "gpu.clock_event_reasons"]
    assert sorted((r[0].time_unix_nano - T0, r[0].value, r[1], r[2]) for r in clock) == [
        (0, 16.0, 32.0, 32.0), (2 * MIN, 24.0, 40.0, 32.0)]


def test_metric_series(both: tuple[ReportReads, ReportReads]) -> None:
    duck, ch = both
    window = {"since_ns": T0, "until_ns": T0 + HOUR}
    for query in ({}, {"layer": "serving"}, {"name": "gpu.temperature"},
                  {"name": "DCGM_FI_DEV_GPU_TEMP", "labels": {"modelName": "H100"}},
                  {"labels": {"host": "gpu-node-1", "device": "GPU-1"}},
                  {"max_series": 2}, {"max_points": 3}, {"labels": {"modelName": "A100"}}):
        expected = duck.metric_series(**window, **query)  # type: ignore[arg-type]
        assert ch.metric_series(**window, **query) == expected, query  # type: ignore[arg-type]
    series, truncated = ch.metric_series(**window, name="gpu.temperature", max_points=3)
    assert truncated
    assert [v for _, v in series[0]["points"]] == [67.0, 68.0, 69.0]  # the last three
    with pytest.raises(ValueError, match="label filter key"):
        ch.metric_series(**window, labels={"a b": "x"})


def test_anomaly_rows_and_watermark(store: DuckDBStore, chdb: ClickHouseStore) -> None:
    rows = [["s1", T0, "model", "latency.p95", "s", "svc", None, None, "{}", 2.0, 0.9, 5],
            ["s1", T0 + MIN, "model", "latency.p95", "s", "svc", None, None, "{}", 3.0, 0.7, 5],
            ["s2", T0, "infrastructure", "gpu.temperature", "Cel", None, "n1", "0",
             '{"gpu":"0"}', 90.0, 0.95, 5]]
    for target in (store, chdb):
        for _ in range(2):  # scored twice (two replicas, or a restart): stored once
            with incident_book(target) as book:
                book.insert_anomalies(rows)
                book.advance_scored_until(T0 + 2 * MIN)
        with incident_book(target) as book:
            book.advance_scored_until(T0)  # never back
    duck, ch = DuckDBReports(store), chdb.report_reads()
    for filters in ({}, {"service": "svc"}, {"host": "n1"}, {"layer": "model"},
                    {"signal": "gpu.temperature"}, {"min_score": 0.8}, {"since_ns": T0 + 1},
                    {"until_ns": T0 + 1}, {"limit": 1}, {"service": ""}):
        expected = duck.list_anomalies(**filters)  # type: ignore[arg-type]
        assert ch.list_anomalies(**filters) == expected, filters  # type: ignore[arg-type]
    assert [(a["series"], a["time_ns"]) for a in ch.list_anomalies()] == [
        ("s1", T0 + MIN), ("s2", T0), ("s1", T0)]
    assert ch.scored_until() == duck.scored_until() == T0 + 2 * MIN


def test_unattributed_energy_reads(both: tuple[ReportReads, ReportReads], store: DuckDBStore,
                                   chdb: ClickHouseStore) -> None:
    """Requests without energy by (service, provider, model, address, port, host), and the
    GPUs of the window with their model name, pod and whether they count energy."""
    gpu = [sample("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", 1e6 * t, t * 60,
                  canonical="gpu.energy.consumed", unit="mJ", host="gpu-node-1", device="GPU-1")
           for t in range(3)]
    gpu += [sample("DCGM_FI_DEV_GPU_UTIL", 5.0, t * 60, canonical="gpu.utilization",
                   host="gpu-node-2", device=f"GPU-{d}", attributes={"pod": "vllm-0"})
            for t in range(3) for d in (2, 3)]
    spans = [span(f"u{i}", 30, 31, service="chat", provider="acme", request_model="mystery-1",
                  output_tokens=5 if i else None,
                  attributes={"server.address": "GPU-Node-2", "server.port": 8000})
             for i in range(3)]
    for target in (store, chdb):
        target.write_batch(spans, gpu, received_ns=1)
    duck, ch = both
    expected = duck.unknown_energy_groups(**RANGE, limit=50)
    assert expected[0] == ("chat", "acme", "mystery-1", "gpu-node-2", "8000", None, 3, True)
    assert len(expected) > 1  # the shared data's spans without energy too
    assert sorted(ch.unknown_energy_groups(**RANGE, limit=50), key=repr) == sorted(expected,
                                                                                  key=repr)
    assert ch.unknown_energy_groups(**RANGE, limit=1) == expected[:1]
    for window in (RANGE, {"since_ns": T0 + 2 * MIN, "until_ns": T0 + 3 * MIN}):
        inventory = duck.gpu_inventory(**window, energy_signal="gpu.energy.consumed")
        assert ch.gpu_inventory(**window, energy_signal="gpu.energy.consumed") == inventory
    assert inventory == [("gpu-node-1", "GPU-1", "H100", None, True),
                         ("gpu-node-2", "GPU-2", None, "vllm-0", False),
                         ("gpu-node-2", "GPU-3", None, "vllm-0", False)]


def test_gpu_energy_measured_by_clickhouse_as_the_gpu_pass_does(
        both: tuple[ReportReads, ReportReads], store: DuckDBStore,
        chdb: ClickHouseStore) -> None:
    """Per GPU, the counter's increase over the intervals starting in the window (a reset
    counts the new reading; units converted; a unit not known, or two units, skip the GPU):
    the intervals the sidecar's GPU pass writes, without its attributed/idle split."""
    counters = {  # (host, device, unit): readings (s, value) from T0
        ("n1", "GPU-1", "J"): [(-60, 0.0), (0, 3600.0), (60, 7200.0), (120, 14400.0),
                               (180, 1800.0), (240, 5400.0), (HOUR // 10**9 + 700, 9000.0)],
        ("n1", "GPU-2", "kWh"): [(30, 1.0), (90, 1.5), (150, 1.5)],  # then idle: no reset
        ("n2", "GPU-3", "mJ"): [(3000, 0.0), (3700, 3.6e6)],  # closed after the window
        ("n2", "GPU-4", "W"): [(0, 1.0), (60, 2.0)],  # not an energy unit: skipped
    }
    gpu = [sample("energy", v, t, canonical="gpu.energy.consumed", unit=unit, host=host,
                  device=device)
           for (host, device, unit), points in counters.items() for t, v in points]
    gpu += [sample("energy", v, t, canonical="gpu.energy.consumed", unit=unit, host="n2",
                   device="GPU-5") for t, v, unit in ((0, 0.0, "J"), (60, 1.0, "Wh"))]
    for target in (store, chdb):
        target.write_batch(samples=gpu, received_ns=1)
    apply_gpu_attribution(store, since_ns=T0, until_ns=T0 + HOUR, settings=Settings())
    duck, ch = both
    found = ch.gpu_energy_summary(**RANGE)
    # GPU-1 from T0: 1 + 2 Wh, a reset (0.5 Wh: the new reading), 1 Wh; the reading after
    # the window is further than the pass's pad (10 min), so it closes no interval
    assert [(g["host"], g["device"], g["intervals"], g["counter_resets"]) for g in found] == [
        ("n1", "GPU-1", 4, 1), ("n1", "GPU-2", 2, 0), ("n2", "GPU-3", 1, 0)]
    assert [g["measured_wh"] for g in found] == pytest.approx([1 + 2 + 0.5 + 1, 500.0, 1.0])
    assert (found[0]["start_ns"], found[0]["end_ns"]) == (T0, T0 + 240 * 10**9)
    assert found[2]["end_ns"] == T0 + 3700 * 10**9
    assert {k for g in found for k in ("attributed_wh", "idle_wh", "idle_ns") if g[k] is not None
            } == set()
    expected = duck.gpu_energy_summary(**RANGE)  # the GPU pass's intervals, in DuckDB
    assert [list(g) for g in found] == [list(g) for g in expected]  # same keys, same order
    split = {"attributed_wh", "idle_wh", "idle_ns"}
    _same([{k: v for k, v in g.items() if k not in split} for g in expected],
          [{k: v for k, v in g.items() if k not in split} for g in found])
    assert ch.gpu_energy_summary(since_ns=T0 + HOUR, until_ns=T0 + 2 * HOUR) == []
