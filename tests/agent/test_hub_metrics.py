"""GET /metrics on ``strata hub`` over ClickHouse (chdb): the fleet's usage counters, latency
quantiles and incident counts computed by ClickHouse, counters that grow by exactly the spans
stored since the previous scrape (whoever stored them), the agent's auth, and the same
counters as an agent's DuckDB given the same data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from strata.agent.api.app import create_app, create_hub_app
from strata.agent.config import Settings
from strata.agent.hub import Hub
from strata.agent.model import Incident, SpanRecord
from strata.agent.runner import Agent
from strata.agent.store.clickhouse.engine import ChdbEngine, rows
from strata.agent.store.clickhouse.exposition import ClickHouseMetrics
from strata.agent.store.clickhouse.store import ClickHouseStore, statements
from strata.agent.store.seam import incident_book

from tests.agent.store.rows import S, span
from tests.agent.store.test_clickhouse import _data

Values = dict[tuple[str, tuple[tuple[str, str], ...]], float]
GPT = {"service": "rag-api", "model": "gpt-4o"}
LLAMA = {"service": "other", "model": "llama"}
ADMIN, READER = "admin-token-metrics", "read-token-metrics"
# A span as the OpenTelemetry Collector's exporter writes it: no ReceivedNs in the insert.
COLLECTOR_INSERT = """
    INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind,
                             ServiceName, SpanAttributes, Duration, StatusCode)
    VALUES (now64(9), '{trace}', '{span}', '', 'chat', 'Client', 'collected',
            map('gen_ai.operation.name', 'chat', 'gen_ai.request.model', 'gpt-4o',
                'gen_ai.usage.input_tokens', '7', 'gen_ai.usage.output_tokens', '3'),
            2000000000, 'Error')"""


def incident(incident_id: str, status: str, *, service: str = "rag-api") -> Incident:
    return Incident(id=incident_id, kind="latency_regression", layer="model", service=service,
                    host=None, status=status, severity="warning", started_at_ns=10,
                    detected_at_ns=20, resolved_at_ns=None, summary="slow", evidence=(),
                    suspected_cause=None, suggestion=None)


def fleet() -> tuple[list[SpanRecord], list[Any]]:
    """rag-api on gpt-4o: five spans of 1, 2, 3, 4 and 10 s, one failed, 100 + 10 tokens each;
    other on llama: two priced spans."""
    spans = [span(f"g{i}", 0, d, service="rag-api", operation="chat", request_model="gpt-4o",
                  input_tokens=100, output_tokens=10, status="error" if i == 0 else "ok")
             for i, d in enumerate((1, 2, 3, 4, 10))]
    spans += [span(f"l{i}", 0, 0.5, service="other", operation="chat", response_model="llama",
                   output_tokens=5) for i in range(2)]
    costs = [(None,) * 5] * 5 + [(0.25, "token_price", 1.5, "estimated", 0.75)] * 2
    return spans, costs


def exposition(client: TestClient, **headers: str) -> str:
    reply = client.get("/metrics", headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain; version=")
    return reply.text


def scrape(client: TestClient, **headers: str) -> Values:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(exposition(client, **headers))
            for s in family.samples}


def value(values: Values, name: str, **labels: str) -> float:
    return values[(name, tuple(sorted(labels.items())))]


def names(values: Values) -> set[str]:
    return {name for name, _labels in values}


def usage(values: Values) -> Values:
    return {k: v for k, v in values.items() if k[0].startswith("strata_gen_ai_")}


@pytest.fixture(name="hub")
def hub_fixture(tmp_path: Path) -> Iterator[Hub]:
    """A hub holding ``fleet()`` and four incidents; /metrics counts spans at once."""
    hub = Hub(Settings(), f"chdb:{tmp_path / 'ch'}")
    hub.store.metrics_settle_ns = 0  # no insert runs concurrently here
    spans, costs = fleet()
    hub.store.write_batch(spans, costs=costs)
    with hub.store.incident_book() as book:
        for inc in (incident("i1", "open"), incident("i2", "open"),
                    incident("i3", "acknowledged"), incident("i4", "resolved")):
            book.insert_incident(inc, 20)
    yield hub
    hub.close()


def test_the_hub_serves_the_fleets_usage_latency_and_incidents(hub: Hub) -> None:
    hub.receiver_stats.requests = 4
    text = exposition(TestClient(create_hub_app(hub), base_url="http://127.0.0.1"))
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for family in text_string_to_metric_families(text) for s in family.samples}
    for suffix, gpt, llama in (("spans", 5, 2), ("errors", 1, 0),
                               ("usage_input_tokens", 500, 0), ("usage_output_tokens", 50, 10),
                               ("cost_usd", 0, 0.5), ("energy_wh", 0, 3.0),
                               ("co2e_grams", 0, 1.5)):
        name = f"strata_gen_ai_{suffix}_total"
        assert value(values, name, **GPT) == pytest.approx(gpt), name
        assert value(values, name, **LLAMA) == pytest.approx(llama), name
    # quantiles interpolated between the durations, as DuckDB's quantile_cont
    latency = "strata_span_duration_seconds"
    for q, expected in (("0.5", 3.0), ("0.95", 8.8), ("0.99", 9.76)):
        assert value(values, latency, service="rag-api", quantile=q) == pytest.approx(expected)
    assert value(values, latency, service="other", quantile="0.5") == pytest.approx(0.5)
    assert value(values, latency + "_count", service="rag-api") == 5
    assert value(values, latency + "_sum", service="rag-api") == pytest.approx(20.0)
    labels = {"kind": "latency_regression", "layer": "model", "severity": "warning",
              "service": "rag-api"}
    assert value(values, "strata_incidents", **labels, status="open") == 2
    assert value(values, "strata_incidents", **labels, status="acknowledged") == 1
    assert not any(k[0] == "strata_incidents" and ("status", "resolved") in k[1] for k in values)
    # the hub's own process, writer and store
    assert value(values, "strata_receiver_requests_total") == 4
    assert "strata_writer_commits_total" in names(values)
    assert value(values, "strata_store_rows", table="spans") == 7
    assert value(values, "strata_store_rows", table="incidents") == 4
    assert value(values, "strata_store_size_bytes") > 0
    assert "process_resident_memory_bytes" in names(values)
    # what the hub has no source for is absent, not zero nor an empty family
    assert not {f.name for f in text_string_to_metric_families(text)
                if f.name.startswith(("strata_collector_", "strata_exporter_",
                                      "strata_clickhouse_forward_", "strata_webhook_"))}


def test_counters_grow_by_exactly_the_spans_stored_since_the_last_scrape(hub: Hub) -> None:
    client = TestClient(create_hub_app(hub), base_url="http://127.0.0.1")
    before = scrape(client)
    again = usage(scrape(client))
    assert again == usage(before)  # nothing new: nothing counted twice
    more = [span(f"n{i}", 0, 2, service="rag-api", operation="chat", request_model="gpt-4o",
                 input_tokens=1, output_tokens=2) for i in range(3)]
    more.append(span("new", 0, 1, service="new-svc", operation="chat", request_model="mini"))
    hub.store.write_batch(more)
    hub.store.engine.command(COLLECTOR_INSERT.format(trace="c" * 32, span="col1"))
    after = scrape(client)
    grown = {k: after[k] - before.get(k, 0.0) for k in usage(after)}
    assert all(delta >= 0 for delta in grown.values())  # a counter never goes down
    assert grown[("strata_gen_ai_spans_total", tuple(sorted(GPT.items())))] == 3
    assert grown[("strata_gen_ai_usage_input_tokens_total", tuple(sorted(GPT.items())))] == 3
    assert grown[("strata_gen_ai_usage_output_tokens_total", tuple(sorted(GPT.items())))] == 6
    assert grown[("strata_gen_ai_spans_total", tuple(sorted(LLAMA.items())))] == 0
    assert value(after, "strata_gen_ai_spans_total", service="new-svc", model="mini") == 1
    collected = {"service": "collected", "model": "gpt-4o"}
    assert value(after, "strata_gen_ai_spans_total", **collected) == 1
    assert value(after, "strata_gen_ai_errors_total", **collected) == 1
    assert value(after, "strata_gen_ai_usage_input_tokens_total", **collected) == 7
    assert value(after, "strata_span_duration_seconds_count", service="rag-api") == 8
    assert value(after, "strata_span_duration_seconds_sum", service="rag-api") == \
        pytest.approx(26.0)
    assert sum(v for (n, _), v in grown.items() if n == "strata_gen_ai_spans_total") == 5


def test_spans_still_settling_are_counted_by_a_later_scrape(hub: Hub) -> None:
    hub.store.engine.command(COLLECTOR_INSERT.format(trace="d" * 32, span="col2"))
    settling = ClickHouseMetrics(hub.store.engine, settle_ns=3600 * S)
    assert settling.usage_received_after(-1) == []  # every insert is younger than an hour
    found = ClickHouseMetrics(hub.store.engine, settle_ns=0).usage_received_after(-1)
    assert sum(n for _service, _model, n, *_rest in found) == 8


def test_spans_stored_before_the_migration_are_counted_once(tmp_path: Path) -> None:
    """A Collector's database from before ReceivedNs: the migration writes it into the old
    parts, so it does not read as 'now' at every scrape."""
    engine = ChdbEngine(tmp_path / "ch")
    try:
        for statement in statements("otel_schema.sql"):
            engine.command(statement)
        engine.command(COLLECTOR_INSERT.format(trace="e" * 32, span="old1"))
        engine.command(COLLECTOR_INSERT.format(trace="e" * 32, span="old2"))
        store = ClickHouseStore(engine)
        store.metrics_settle_ns = 0
        reads = store.metrics_reads()
        first = reads.usage_received_after(-1)
        assert [(s, m, n) for s, m, n, *_ in first] == [("collected", "gpt-4o", 2)]
        assert reads.usage_received_after(int(first[0][-1])) == []
        received = "SELECT ReceivedNs FROM otel_traces ORDER BY SpanId"
        assert rows(engine.query(received)) == rows(engine.query(received))
    finally:
        engine.close()


def test_metrics_needs_a_token_as_on_the_agent(tmp_path: Path) -> None:
    hub = Hub(Settings(api_token=ADMIN, api_read_token=READER), f"chdb:{tmp_path / 'ch'}")
    agent = Agent(Settings(db=str(tmp_path / "a.duckdb"), api_token=ADMIN,
                           api_read_token=READER))
    try:
        for app in (create_hub_app(hub), create_app(agent)):
            client = TestClient(app, base_url="http://127.0.0.1")
            assert client.get("/metrics").status_code == 401
            wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            scrape(client, Authorization=f"Bearer {READER}")
    finally:
        agent.close()
        hub.close()


def test_the_same_data_gives_the_agents_counters(tmp_path: Path) -> None:
    """Parity: spans, errors, tokens, cost, energy and carbon per (service, model), and
    incident counts, from an agent's DuckDB and from the hub's ClickHouse."""
    agent = Agent(Settings(db=str(tmp_path / "agent.duckdb")))
    hub = Hub(Settings(), f"chdb:{tmp_path / 'ch'}")
    hub.store.metrics_settle_ns = 0
    spans, _samples, _deployments = _data()
    spans += fleet()[0]
    costs = [(0.01 * i, "token_price", 0.1 * i, "estimated", 0.02 * i) if i % 2 else (None,) * 5
             for i in range(len(spans))]
    incidents = [incident("i1", "open"), incident("i2", "acknowledged", service="other"),
                 incident("i3", "resolved")]
    try:
        for store in (agent.store, hub.store):
            store.write_batch(spans, received_ns=1, costs=costs)
            with incident_book(store) as book:
                for inc in incidents:
                    book.insert_incident(inc, 20)
        found = [scrape(TestClient(app, base_url="http://127.0.0.1"))
                 for app in (create_app(agent), create_hub_app(hub))]
    finally:
        agent.close()
        hub.close()
    expected, hubs = ({k: v for k, v in f.items()
                       if k[0].startswith(("strata_gen_ai_", "strata_incidents"))}
                      for f in found)
    assert hubs.keys() == expected.keys()
    assert hubs == pytest.approx(expected)
    assert value(hubs, "strata_gen_ai_spans_total", service="rag-api", model="gpt-4o") == 11
    assert sum(v for (n, _), v in hubs.items() if n == "strata_incidents") == 2
