"""strata.agent.store.spans: each read and write against known rows in a real DuckDB file."""

from __future__ import annotations

import pytest
from strata.agent.model import Layer, SpanRecord
from strata.agent.store import spans as q
from strata.agent.store.db import DuckDBStore

from tests.agent.store.rows import MIN, T0, TRACE_A, TRACE_B, S, column_rows, sample, span, write

NO_COST = (None, None, None, None, None)


@pytest.fixture(name="traces")
def traces_fixture(store: DuckDBStore) -> DuckDBStore:
    """Trace A: a workflow span and its model call (priced); trace B: one search span."""
    write(store, [
        span("a1", 0, 3, layer=Layer.ORCHESTRATION, kind="server", name="workflow",
             service="rag-api", resource={"host.name": "n1"}),
        span("a2", 1, 2, parent_span_id="a1", name="chat", service="rag-api", status="error",
             request_model="gpt-4o", input_tokens=100, output_tokens=20, host="node-1",
             attributes={"k": "v", "server.address": "api.openai.com"}),
        span("b1", 10, 11, trace=TRACE_B, name="search", service="search", layer=Layer.DATA),
    ], costs=[NO_COST, (0.5, "token_price", 0.1, "estimated", 0.04), NO_COST])
    return store


def test_list_traces_newest_first_with_filters(traces: DuckDBStore) -> None:
    cur = traces.cursor()
    a = {"trace_id": TRACE_A, "start_ns": T0, "duration_ns": 3 * S, "spans": 2,
         "root_name": "workflow", "service": "rag-api", "has_error": True, "input_tokens": 100,
         "output_tokens": 20, "cost_usd": 0.5, "energy_wh": 0.1}
    b = {"trace_id": TRACE_B, "start_ns": T0 + 10 * S, "duration_ns": S, "spans": 1,
         "root_name": "search", "service": "search", "has_error": False, "input_tokens": None,
         "output_tokens": None, "cost_usd": None, "energy_wh": None}
    assert q.list_traces(cur) == [b, a]
    assert q.list_traces(cur, model="gpt-4o") == [a]
    assert q.list_traces(cur, status="error") == [a]
    assert q.list_traces(cur, min_duration_ns=2 * S) == [a]
    assert q.list_traces(cur, since_ns=T0 + 5 * S) == [b]
    assert q.list_traces(cur, until_ns=T0 + 5 * S, service="rag-api") == [a]
    assert q.list_traces(cur, limit=1) == [b]


def test_trace_spans_in_start_order_with_attributes_decoded(traces: DuckDBStore) -> None:
    spans = q.trace_spans(traces.cursor(), TRACE_A)
    assert [s["span_id"] for s in spans] == ["a1", "a2"]
    assert spans[1] == {
        "trace_id": TRACE_A, "span_id": "a2", "parent_span_id": "a1", "name": "chat",
        "kind": "client", "start_ns": T0 + S, "end_ns": T0 + 2 * S, "duration_ns": S,
        "status": "error", "service": "rag-api", "service_version": None, "layer": "model",
        "operation": None, "provider": None, "request_model": "gpt-4o", "response_model": None,
        "input_tokens": 100, "output_tokens": 20, "cache_read_tokens": None,
        "reasoning_tokens": None, "error_type": None, "host": "node-1", "team": None,
        "cost_usd": 0.5, "cost_source": "token_price", "energy_wh": 0.1,
        "energy_source": "estimated", "co2e_g": 0.04,
        "attributes": {"k": "v", "server.address": "api.openai.com"},
    }  # fmt: skip
    assert q.trace_spans(traces.cursor(), "c" * 32) == []


def test_span_resources_and_span_record(traces: DuckDBStore) -> None:
    cur = traces.cursor()
    resources = q.span_resources(cur, TRACE_A)
    assert resources == {"a1": '{"host.name":"n1"}', "a2": "{}"}
    row = {**q.trace_spans(cur, TRACE_A)[0], "resource": resources["a1"]}
    assert q.span_record(row) == SpanRecord(
        trace_id=TRACE_A, span_id="a1", parent_span_id=None, name="workflow", kind="server",
        start_unix_nano=T0, end_unix_nano=T0 + 3 * S, status="ok", service="rag-api",
        layer=Layer.ORCHESTRATION, resource={"host.name": "n1"})


def test_service_span_series_per_step(traces: DuckDBStore) -> None:
    rows = q.service_span_series(traces.cursor(), "rag-api", since_ns=T0, until_ns=T0 + MIN,
                                 step_ns=MIN)
    assert rows == [{
        "t": T0, "requests": 1, "latency_p50": 3.0, "latency_p95": 3.0, "error_ratio": 0.0,
        "model_latency_p95": 1.0, "retrieval_latency_p95": None, "input_tokens": 100,
        "output_tokens": 20, "usd": 0.5, "energy_wh": 0.1,
    }]  # fmt: skip
    assert q.service_span_series(traces.cursor(), "rag-api", since_ns=T0 + MIN,
                                 until_ns=T0 + 2 * MIN, step_ns=MIN) == []


def test_service_targets_keep_only_the_correlation_keys(traces: DuckDBStore) -> None:
    targets = q.service_targets(traces.cursor(), "rag-api", since_ns=T0, until_ns=T0 + MIN)
    assert targets == [SpanRecord(
        trace_id="", span_id="0", parent_span_id=None, name="", kind="internal",
        start_unix_nano=T0, end_unix_nano=T0 + MIN, status="unset", service="rag-api",
        layer=Layer.MODEL, request_model="gpt-4o", host="node-1",
        attributes={"server.address": "api.openai.com"})]


def write_window(store: DuckDBStore) -> DuckDBStore:
    """Two minutes of model and data spans (and one sample before them)."""
    write(store, [
        span("m1", 1, 3, operation="chat", request_model="gpt-4o", provider="openai",
             input_tokens=100, output_tokens=10, host="gpu-1"),
        span("m2", 5, 9, operation="chat", response_model="gpt-4o-mini", provider="openai",
             input_tokens=50, status="error"),
        span("m3", 61, 62, operation="chat", request_model="gpt-4o", input_tokens=10,
             output_tokens=5),
        span("d1", 2, 3, operation="query", name="search docs", layer=Layer.DATA,
             attributes={"server.address": "qdrant:6333"}),
        span("x", 4, 5, layer=Layer.ORCHESTRATION),  # no operation: not a GenAI group
    ], [sample("up", 1.0, -5)], costs=[(0.01, "token_price", None, None, None), *[NO_COST] * 4])
    return store


@pytest.fixture(name="window")
def window_fixture(store: DuckDBStore) -> DuckDBStore:
    return write_window(store)


def test_span_bucket_stats_per_bucket_and_group(window: DuckDBStore) -> None:
    cols = q.span_bucket_stats(window.cursor(), start_ns=T0, end_ns=T0 + 2 * MIN,
                               bucket_ns=MIN, sep="|")
    assert list(cols) == ["bucket", "gkey", "n", "errors", "p50", "p95", "in_tok", "out_tok",
                          "n_tok", "cost", "n_cost"]
    assert column_rows(cols) == [
        (T0, "svc|data|query|search docs", 1, 0, 1.0, 1.0, 0, 0, 0, None, 0),
        (T0, "svc|model|chat|", 2, 1, 2.0, 2.0, 100, 10, 1, 0.01, 1),
        (T0 + MIN, "svc|model|chat|", 1, 0, 1.0, 1.0, 10, 5, 1, None, 0),
    ]


def test_model_bucket_usage_of_spans_with_output_tokens(window: DuckDBStore) -> None:
    cols = q.model_bucket_usage(window.cursor(), start_ns=T0, end_ns=T0 + 2 * MIN,
                                bucket_ns=MIN, sep="|")
    assert list(cols) == ["bucket", "gkey", "model", "provider", "in_tok", "out_tok", "n_tok"]
    assert column_rows(cols) == [
        (T0, "svc|model|chat|", "gpt-4o", "openai", 100, 10, 1),
        (T0 + MIN, "svc|model|chat|", "gpt-4o", "", 10, 5, 1),
    ]


def test_service_dependencies_and_event_time_range(store: DuckDBStore) -> None:
    assert q.event_time_range(store.cursor()) is None
    write_window(store)
    cur = store.cursor()
    assert q.service_dependencies(cur, start_ns=T0, end_ns=T0 + 2 * MIN) == [
        ("svc", "gpu-1"), ("svc", "qdrant:6333")]
    assert q.service_dependencies(cur, start_ns=T0 + MIN, end_ns=T0 + 2 * MIN) == []
    assert q.event_time_range(cur) == (T0 - 5 * S, T0 + 61 * S)


@pytest.fixture(name="gpu")
def gpu_fixture(store: DuckDBStore) -> DuckDBStore:
    write(store, [
        span("g1", 0, 10, attributes={"gpu.uuid": "GPU-a"}),
        span("g2", 20, 30, resource={"gpu.id": "0"}),
        span("n1", 5, 6),
    ], received_ns=100)
    write(store, samples=[sample("energy", 5.0, 40, canonical="gpu.energy.consumed")],
          received_ns=200)
    return store


def test_gpu_candidates_overlapping_a_range(gpu: DuckDBStore) -> None:
    cur = gpu.cursor()
    found = sorted(q.gpu_candidates(cur, T0 + 5 * S, T0 + 25 * S, max_span_ns=MIN))
    by_name = dict(zip(q.GPU_CANDIDATE_COLUMNS, zip(*found, strict=True), strict=True))
    assert by_name["span_id"] == ("g1", "g2")
    assert by_name["gpu_uuid"] == ('"GPU-a"', None)  # JSON text: a list stays a list
    assert by_name["resource_gpu_id"] == (None, '"0"')
    assert by_name["start_ns"] == (T0, T0 + 20 * S)
    # g1 started more than max_span_ns before the range: not looked for
    assert [r[1] for r in q.gpu_candidates(cur, T0 + 5 * S, T0 + 25 * S, max_span_ns=S)] == [
        "g2"]


def test_gpu_candidates_model_spans_by_address_or_gpu_host(store: DuckDBStore) -> None:
    write(store, [
        span("c1", 0, 10, request_model="llama", attributes={"server.address": "gpu-1",
                                                     "server.port": 8000}),
        span("s1", 0, 10, request_model="llama", host="GPU-1"),
        span("s2", 0, 10, request_model="llama", host="app-1"),
        span("c2", 0, 10, request_model="llama", attributes={"server.address": "GPU-1.internal"}),
        span("h1", 0, 10, request_model="gpt-4o", attributes={"server.address": "api.openai.com"}),
        span("x1", 0, 10, attributes={"server.address": "gpu-1"}),  # no model: not a request
    ], received_ns=100)
    rows = q.gpu_candidates(store.cursor(), T0, T0 + MIN, max_span_ns=MIN, hosts=["gpu-1"],
                            addresses=["gpu-1"])
    cols = q.GPU_CANDIDATE_COLUMNS
    got = sorted((r[cols.index("span_id")], r[cols.index("address")], r[cols.index("port")],
                  r[cols.index("host")]) for r in rows)
    assert got == [("c1", "gpu-1", "8000", None), ("c2", "GPU-1.internal", None, None),
                   ("s1", None, None, "GPU-1")]


def test_gpu_received_range(gpu: DuckDBStore) -> None:
    cur = gpu.cursor()
    signal = "gpu.energy.consumed"
    assert q.gpu_received_range(cur, received_since_ns=0, energy_signal=signal) == (
        T0, T0 + 40 * S)
    assert q.gpu_received_range(cur, received_since_ns=150, energy_signal=signal) == (
        T0 + 40 * S, T0 + 40 * S)
    assert q.gpu_received_range(cur, received_since_ns=300, energy_signal=signal) is None


def test_update_span_costs_only_in_range(gpu: DuckDBStore) -> None:
    with gpu.transaction() as tx:
        q.update_span_costs(tx, [(TRACE_A, "g1", 1.5, "gpu_time", 2.0, "measured", 0.3),
                                 (TRACE_A, "g2", 9.0, "gpu_time", 9.0, "measured", 9.0)],
                            since_ns=T0, until_ns=T0 + 15 * S)
        q.update_span_costs(tx, [], since_ns=T0, until_ns=T0 + 15 * S)
    rows = gpu.cursor().execute(
        "SELECT span_id, cost_usd, cost_source, energy_wh, energy_source, co2e_g FROM spans "
        "ORDER BY span_id").fetchall()
    assert rows == [("g1", 1.5, "gpu_time", 2.0, "measured", 0.3),
                    ("g2", None, None, None, None, None), ("n1", None, None, None, None, None)]


@pytest.fixture(name="received")
def received_fixture(store: DuckDBStore) -> DuckDBStore:
    """Services a (3 spans), b (1) received at 100, c (2) received at 50."""
    write(store, [span("c1", 0, 4, service="c"), span("c2", 0, 6, service="c",
                                                     request_model="m", status="error")],
          received_ns=50)
    write(store, [span("a1", 0, 1, service="a", input_tokens=3, output_tokens=4),
                  span("a2", 0, 2, service="a"), span("a3", 0, 3, service="a"),
                  span("b1", 0, 8, service="b")],
          received_ns=100, costs=[(0.5, "token_price", 1.0, "estimated", 2.0), *[NO_COST] * 3])
    return store


def test_busiest_services(received: DuckDBStore) -> None:
    cur = received.cursor()
    assert q.busiest_services(cur, received_since_ns=100, limit=5) == ["a", "b"]
    assert q.busiest_services(cur, received_since_ns=0, limit=2) == ["a", "c"]


def test_duration_quantiles_fold_the_rest_into_other(received: DuckDBStore) -> None:
    rows = q.duration_quantiles(received.cursor(), received_since_ns=0, services=["a"],
                                other="other", quantiles=[0.5, 1.0])
    assert rows == [("a", [2.0 * S, 3.0 * S]), ("other", [6.0 * S, 8.0 * S])]


def test_usage_received_after(received: DuckDBStore) -> None:
    new = [("a", "", 3, 0, 3, 4, 0.5, 1.0, 2.0, 6.0, 100),
           ("b", "", 1, 0, 0, 0, 0.0, 0.0, 0.0, 8.0, 100)]
    assert sorted(q.usage_received_after(received.cursor(), 50)) == new
    assert sorted(q.usage_received_after(received.cursor(), -1)) == [
        *new, ("c", "", 1, 0, 0, 0, 0.0, 0.0, 0.0, 4.0, 50),
        ("c", "m", 1, 1, 0, 0, 0.0, 0.0, 0.0, 6.0, 50)]
    assert q.usage_received_after(received.cursor(), 100) == []
