"""StrataCollector over a real DuckDB store; exposition parsed back with prometheus_client."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from strata.agent.ingest.stats import ReceiverStats, WriterStats
from strata.agent.model import Incident, Layer, Sample, SpanRecord
from strata.agent.store.db import DuckDBStore
from strata.agent.store.incidents import insert_incident
from strata.agent.store.seam import metrics_reads
from strata.exporters.prometheus import OTHER, StrataCollector

NOW = 1_800_000_000_000_000_000
S = 1_000_000_000


def span(service: str, duration_s: float, *, model: str | None = "gpt-4o", status: str = "ok",
         tokens: tuple[int, int] = (100, 20)) -> SpanRecord:
    start = NOW - 60 * S
    return SpanRecord(
        trace_id=os.urandom(16).hex(), span_id=os.urandom(8).hex(), parent_span_id=None,
        name="chat", kind="client", start_unix_nano=start,
        end_unix_nano=start + int(duration_s * S), status=status, service=service,
        layer=Layer.MODEL, request_model=model, response_model=model,
        input_tokens=tokens[0], output_tokens=tokens[1],
    )


def collector_samples(name: str, up: float, duration: float, errors: float) -> list[Sample]:
    attrs = {"collector": name}
    return [
        Sample("strata.collector.up", up, "1", Layer.INFRASTRUCTURE, NOW - S, attrs),
        Sample("strata.collector.duration", duration, "s", Layer.INFRASTRUCTURE, NOW - S, attrs),
        Sample("strata.collector.errors", errors, "{error}", Layer.INFRASTRUCTURE, NOW - S,
               attrs),
    ]


def scrape(collector: StrataCollector) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """name -> {sorted labels: value}, parsed from the text exposition."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    text = generate_latest(registry).decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def one(values: dict[tuple[tuple[str, str], ...], float], **labels: str) -> float:
    return values[tuple(sorted(labels.items()))]


def write(store: DuckDBStore, spans: Sequence[SpanRecord] = (), samples: Sequence[Sample] = (),
          costs: list | None = None, received_ns: int = NOW - 10 * S) -> None:  # type: ignore[type-arg]
    store.write_batch(spans, samples, received_ns=received_ns, costs=costs)


def test_health_and_derived_families(store: DuckDBStore) -> None:
    spans = [span("rag-api", d) for d in (0.1, 0.2, 0.3, 0.4, 1.0)]
    spans.append(span("rag-api", 0.5, status="error"))
    spans.append(span("search", 2.0, model="claude-sonnet-4-5", tokens=(1000, 300)))
    costs = [(0.001, "table", 0.01, "estimate", 0.004)] * len(spans)
    write(store, spans, collector_samples("nvml", 1, 0.012, 0)
          + collector_samples("scrape:vllm", 0, 2.0, 7), costs)
    with store.transaction() as cur:
        for n, (status, severity) in enumerate([("open", "critical"), ("open", "critical"),
                                                ("acknowledged", "warning"),
                                                ("resolved", "info")]):
            insert_incident(cur, Incident(
                id=f"i{n}", kind="latency_regression", layer="serving", service="rag-api",
                host=None, status=status, severity=severity, started_at_ns=NOW,
                detected_at_ns=NOW, summary="s", evidence=(), suspected_cause=None,
                suggestion=None), NOW)
    receiver = ReceiverStats(requests=10, accepted_spans=7, bad_requests=2, throttled=1)
    writer = WriterStats(committed_spans=7, commits=1, last_commit_s=0.25)
    values = scrape(StrataCollector(metrics_reads(store), receiver=receiver, writer=writer,
                                    writer_queue=lambda: 42, clock=lambda: NOW))

    assert one(values["strata_receiver_requests_total"]) == 10
    assert one(values["strata_receiver_bad_requests_total"]) == 2
    assert one(values["strata_receiver_throttled_requests_total"]) == 1
    assert one(values["strata_writer_committed_spans_total"]) == 7
    assert one(values["strata_writer_queue_items"]) == 42
    assert one(values["strata_store_rows"], table="spans") == 7
    assert one(values["strata_store_size_bytes"]) > 0
    assert one(values["strata_collector_up"], collector="nvml") == 1
    assert one(values["strata_collector_up"], collector="scrape:vllm") == 0
    assert one(values["strata_collector_scrape_duration_seconds"], collector="scrape:vllm") == 2
    assert one(values["strata_collector_errors_total"], collector="scrape:vllm") == 7
    latency = values["strata_span_duration_seconds"]
    assert one(latency, service="rag-api", quantile="0.5") == pytest.approx(0.35)
    assert one(latency, service="search", quantile="0.99") == pytest.approx(2.0)
    assert one(values["strata_span_duration_seconds_count"], service="rag-api") == 6
    assert one(values["strata_span_duration_seconds_sum"], service="rag-api") == pytest.approx(2.5)
    assert one(values["strata_gen_ai_spans_total"], service="rag-api", model="gpt-4o") == 6
    assert one(values["strata_gen_ai_errors_total"], service="rag-api", model="gpt-4o") == 1
    assert one(values["strata_gen_ai_usage_input_tokens_total"], service="search",
               model="claude-sonnet-4-5") == 1000
    assert one(values["strata_gen_ai_cost_usd_total"], service="rag-api",
               model="gpt-4o") == pytest.approx(0.006)
    assert one(values["strata_gen_ai_energy_wh_total"], service="search",
               model="claude-sonnet-4-5") == pytest.approx(0.01)
    assert one(values["strata_gen_ai_co2e_grams_total"], service="search",
               model="claude-sonnet-4-5") == pytest.approx(0.004)
    incidents = values["strata_incidents"]
    assert one(incidents, kind="latency_regression", layer="serving", severity="critical",
               service="rag-api", status="open") == 2
    assert len(incidents) == 2  # resolved ones are not listed
    assert one(values["strata_build_info"], version=__import__("agent").__version__) == 1


def test_counters_are_incremental_and_survive_retention(store: DuckDBStore) -> None:
    collector = StrataCollector(metrics_reads(store), clock=lambda: NOW)
    write(store, [span("a", 0.1) for _ in range(3)], received_ns=NOW - 100 * S)
    assert one(scrape(collector)["strata_gen_ai_spans_total"], service="a", model="gpt-4o") == 3
    write(store, [span("a", 0.1) for _ in range(2)], received_ns=NOW - 50 * S)
    store.purge_older_than(NOW - 60 * S)  # retention removes the first three rows
    assert one(scrape(collector)["strata_gen_ai_spans_total"], service="a", model="gpt-4o") == 5
    assert one(scrape(collector)["strata_gen_ai_spans_total"], service="a", model="gpt-4o") == 5


def test_latency_window_is_on_received_time(store: DuckDBStore) -> None:
    write(store, [span("old", 1.0)], received_ns=NOW - 3600 * S)
    write(store, [span("new", 1.0)], received_ns=NOW - 10 * S)
    latency = scrape(StrataCollector(metrics_reads(store),
                                     clock=lambda: NOW))["strata_span_duration_seconds"]
    assert {dict(k)["service"] for k in latency} == {"new"}


def test_cardinality_is_capped_with_an_other_bucket(store: DuckDBStore) -> None:
    spans = [span(f"svc-{i:05d}", 0.1) for i in range(3000)]
    spans += [span("busy", 0.2) for _ in range(50)]
    write(store, spans)
    collector = StrataCollector(metrics_reads(store), clock=lambda: NOW, max_series=600,
                                max_series_per_family=300)
    values = scrape(collector)
    derived = [name for name in values
               if name.startswith(("strata_span_duration", "strata_gen_ai", "strata_incidents"))]
    assert len(derived) == 10  # the summary has _count and _sum
    assert sum(len(values[name]) for name in derived) <= 600
    spans_total = values["strata_gen_ai_spans_total"]
    assert len(spans_total) == (600 - 300) // 7  # latency took 300; 7 families share the rest
    assert one(spans_total, service="busy", model="gpt-4o") == 50  # the busiest keep their own
    assert one(spans_total, service=OTHER, model=OTHER) == 3050 - 50 - (len(spans_total) - 2)
    assert sum(spans_total.values()) == 3050  # nothing lost, only folded
    latency_services = {dict(k)["service"] for k in values["strata_span_duration_seconds"]}
    assert OTHER in latency_services
    assert "busy" in latency_services
    assert len(latency_services) == 300 // 5  # 3 quantiles + _count + _sum per service
    overflow = values["strata_metrics_overflow_series"]
    assert one(overflow, family="strata_gen_ai") > 0


def test_default_cap_holds_under_a_cardinality_attack(store: DuckDBStore) -> None:
    # RELIABILITY I10: random service names and models; /metrics stays <= 10,000 series.
    write(store, [span(f"s{os.urandom(6).hex()}", 0.1, model=os.urandom(4).hex())
                  for _ in range(12_000)])
    values = scrape(StrataCollector(metrics_reads(store), clock=lambda: NOW))
    total = sum(len(v) for v in values.values())
    assert total <= 10_000 + 100  # + the fixed, label-free health families


def test_label_values_are_escaped_and_cut(store: DuckDBStore) -> None:
    nasty = 'a"b\\c\nd\u202eé🚀' + "x" * 500
    write(store, [span(nasty, 0.1)])
    values = scrape(StrataCollector(metrics_reads(store), clock=lambda: NOW))
    (labels,) = values["strata_gen_ai_spans_total"]
    assert dict(labels)["service"] == nasty[:128]


def test_registering_does_not_query_the_store(tmp_path: Path) -> None:
    """Registering reads nothing (no collect() at registration, with or without
    auto-describe): it succeeds on a closed store, where any query raises."""
    store = DuckDBStore(tmp_path / "s.duckdb")
    store.close()
    collector = StrataCollector(metrics_reads(store))
    for auto_describe in (False, True):
        CollectorRegistry(auto_describe=auto_describe).register(collector)
    with pytest.raises(duckdb.Error):  # the check has teeth: a query on this store fails
        list(collector.collect())
