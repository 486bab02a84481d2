"""strata.agent.store.costs: cost reads, the hourly rollup and the GPU energy table, against
known rows in a real DuckDB file."""

from __future__ import annotations

from typing import Any

import pytest
from strata.agent.model import Layer
from strata.agent.store import costs as q
from strata.agent.store.db import DuckDBStore

from tests.agent.store.rows import HOUR, MIN, T0, S, sample, span, write

NO_COST = (None, None, None, None, None)


@pytest.fixture(name="spend")
def spend_fixture(store: DuckDBStore) -> DuckDBStore:
    """Two priced requests and one unpriced in hour 0, one unpriced in hour 1, a workflow span
    that is not a request; all received at 100."""
    write(store, [
        span("p1", 10, 11, service="llm", team="search", request_model="gpt-4o",
             provider="openai", host="app", input_tokens=100, output_tokens=10,
             cache_read_tokens=30, attributes={"user.id": "u1"}),
        span("p2", 20, 21, service="llm", team="ads", response_model="gpt-4o-mini",
             provider="openai", host="app", input_tokens=2000, output_tokens=300,
             attributes={"enduser.id": "u2"}),
        span("p3", 3605, 3606, service="llm", team="search", request_model="llama",
             input_tokens=10, output_tokens=5),
        span("w1", 30, 40, service="llm", layer=Layer.ORCHESTRATION),
    ], costs=[(0.25, "token_price", 0.5, "estimated", 0.25),
              (0.5, "token_price", 1.0, "measured", 0.5), NO_COST, NO_COST], received_ns=100)
    return store


def measures(**values: Any) -> dict[str, Any]:
    """A cost row's measures: requests counts 0 and sums None unless given."""
    row: dict[str, Any] = dict.fromkeys(q.MEASURES)
    row.update({m: 0 for m in ("requests", "priced_requests", "energy_requests",
                                "co2e_requests")})
    row.update(values)
    return row


P1 = measures(requests=1, priced_requests=1, input_tokens=100, output_tokens=10, usd=0.25,
              energy_wh=0.5, energy_wh_estimated=0.5, energy_requests=1, co2e_g=0.25,
              co2e_requests=1, token_energy_wh=0.5, token_energy_tokens=110)
P2 = measures(requests=1, priced_requests=1, input_tokens=2000, output_tokens=300, usd=0.5,
              energy_wh=1.0, energy_wh_measured=1.0, energy_requests=1, co2e_g=0.5,
              co2e_requests=1, token_energy_wh=1.0, token_energy_tokens=2300)
P3 = measures(requests=1, input_tokens=10, output_tokens=5)


def test_cost_report_one_bucket_per_group(spend: DuckDBStore) -> None:
    cur = spend.cursor()
    rows = q.cost_report(cur, group_by="service", since_ns=T0, until_ns=T0 + 2 * HOUR,
                         rollup=False)
    assert rows == [{"bucket_ns": T0, "group": "llm", **measures(
        requests=3, priced_requests=2, input_tokens=2110, output_tokens=315, usd=0.75,
        energy_wh=1.5, energy_wh_measured=1.0, energy_wh_estimated=0.5, energy_requests=2,
        co2e_g=0.75, co2e_requests=2, token_energy_wh=1.5, token_energy_tokens=2410)}]


def test_cost_report_buckets_groups_and_filters(spend: DuckDBStore) -> None:
    cur = spend.cursor()
    window = {"since_ns": T0, "until_ns": T0 + 2 * HOUR, "rollup": False}
    assert q.cost_report(cur, group_by="team", bucket_ns=HOUR, **window) == [
        {"bucket_ns": T0, "group": "ads", **P2}, {"bucket_ns": T0, "group": "search", **P1},
        {"bucket_ns": T0, "group": None, **measures()},  # the workflow span has no team
        {"bucket_ns": T0 + HOUR, "group": "search", **P3}]
    assert q.cost_report(cur, group_by="user", **window) == [
        {"bucket_ns": T0, "group": "u1", **P1}, {"bucket_ns": T0, "group": "u2", **P2},
        {"bucket_ns": T0, "group": None, **P3}]
    assert q.cost_report(cur, group_by="model", filters={"model": "gpt-4o"}, **window) == [
        {"bucket_ns": T0, "group": "gpt-4o", **P1}]
    assert q.cost_report(cur, group_by="team", filters={"user.id": "u1"}, **window) == [
        {"bucket_ns": T0, "group": "search", **P1}]


def test_invalid_keys_and_buckets_are_refused() -> None:
    assert q.group_spec("service") == q.GroupSpec("service", "service", "service", {})
    assert q.group_spec("operation") == q.GroupSpec("operation", "operation", None, {})
    assert q.group_spec("user", slot="f") == q.GroupSpec(
        "user", "coalesce(json_extract_string(attributes, $f0), json_extract_string(resource, "
        "$f0), json_extract_string(attributes, $f1), json_extract_string(resource, $f1))",
        None, {"f0": '$."user.id"', "f1": '$."enduser.id"'})
    with pytest.raises(ValueError, match="group_by/filter must be one of"):
        q.group_spec("x'); DROP TABLE spans; --")


def test_non_positive_bucket_is_refused(store: DuckDBStore) -> None:
    with pytest.raises(ValueError, match="bucket must be positive"):
        q.cost_report(store.cursor(), group_by="service", since_ns=0, until_ns=1, bucket_ns=0)


def test_rollup_watermark_and_received_hours(spend: DuckDBStore) -> None:
    cur = spend.cursor()
    assert q.rollup_watermark(cur) == -1
    q.set_rollup_watermark(cur, 100)
    assert q.rollup_watermark(cur) == 100
    write(spend, [span("p4", 50, 51, service="llm", request_model="gpt-4o")], received_ns=200)
    assert q.spans_received_since(cur, 150) == (200, {T0})
    assert q.spans_received_since(cur, 0) == (200, {T0, T0 + HOUR})
    assert q.spans_received_since(cur, 300) == (None, set())


def test_rebuilt_hours_are_read_from_the_rollup(spend: DuckDBStore) -> None:
    """Full hours come from cost_hourly (up to the watermark), later spans from spans."""
    window = {"group_by": "team", "bucket_ns": HOUR, "since_ns": T0, "until_ns": T0 + 2 * HOUR}
    with spend.transaction() as tx:
        q.rebuild_rollup_hours(tx, [T0 + HOUR, T0], watermark_ns=100)
        q.set_rollup_watermark(tx, 100)
    cur = spend.cursor()
    assert cur.execute(
        "SELECT hour_ns, service, team, model, provider, host, requests, usd FROM cost_hourly "
        "ORDER BY ALL").fetchall() == [
        (T0, "llm", "ads", "gpt-4o-mini", "openai", "app", 1, 0.5),
        (T0, "llm", "search", "gpt-4o", "openai", "app", 1, 0.25),
        (T0, "llm", None, None, None, None, 0, None),  # the workflow span: not a request
        (T0 + HOUR, "llm", "search", "llama", None, None, 1, None)]
    write(spend, [span("p4", 50, 51, service="llm", team="ads", request_model="x")],
          received_ns=200)  # after the watermark: read from spans
    cur.execute("DELETE FROM spans WHERE received_ns <= 100")  # only the rollup has them now
    p4 = measures(requests=1)
    assert q.cost_report(cur, **window) == [
        {"bucket_ns": T0, "group": "ads", **{**P2, "requests": 2}},
        {"bucket_ns": T0, "group": "search", **P1}, {"bucket_ns": T0, "group": None, **measures()},
        {"bucket_ns": T0 + HOUR, "group": "search", **P3}]
    assert q.cost_report(cur, rollup=False, **window) == [
        {"bucket_ns": T0, "group": "ads", **p4}]


def test_gpu_energy_upsert_and_summary(store: DuckDBStore) -> None:
    cur = store.cursor()
    q.upsert_gpu_energy(cur, [
        ("node-1", "GPU-a", T0, T0 + 10 * S, 9.0, 9.0, 0.0, 0, 0),
        ("node-1", "GPU-a", T0 + 10 * S, T0 + 20 * S, 1.0, 1.0, 0.0, 0, 1),
        ("node-1", "GPU-b", T0 + HOUR, T0 + HOUR + S, 5.0, 0.0, 5.0, S, 0),
    ])
    q.upsert_gpu_energy(cur, [("node-1", "GPU-a", T0, T0 + 10 * S, 3.0, 2.0, 1.0, 5 * S, 0)])
    q.upsert_gpu_energy(cur, [])
    assert q.gpu_energy_summary(cur, since_ns=T0, until_ns=T0 + HOUR) == [{
        "host": "node-1", "device": "GPU-a", "intervals": 2, "start_ns": T0,
        "end_ns": T0 + 20 * S, "measured_wh": 4.0, "attributed_wh": 3.0, "idle_wh": 1.0,
        "idle_ns": 5 * S, "counter_resets": 1}]


def test_gpu_hourly_usage(store: DuckDBStore) -> None:
    gpu_a = {"host": "node-1", "device": "GPU-a"}
    write(store, samples=[
        sample("util", 40.0, 0, canonical="gpu.utilization", unit="%", **gpu_a),
        sample("util", 60.0, 1800, canonical="gpu.utilization", unit="%", **gpu_a),
        sample("util", 0.5, 0, canonical="gpu.utilization", host="node-1", device="GPU-b"),
        sample("power", 100.0, 0, canonical="gpu.power.draw", unit="W", **gpu_a),
        sample("power", 200.0, 60, canonical="gpu.power.draw", unit="W", **gpu_a),
        sample("energy", 0.0, 0, canonical="gpu.energy.consumed", unit="mJ", **gpu_a),
        sample("energy", 1000.0, 600, canonical="gpu.energy.consumed", unit="mJ", **gpu_a),
        sample("energy", 500.0, 1200, canonical="gpu.energy.consumed", unit="mJ", **gpu_a),
    ])
    assert q.gpu_hourly_usage(store.cursor(), since_ns=T0, until_ns=T0 + HOUR) == [
        ("node-1", "GPU-a", T0, 50.0, 150.0, 1500.0, "mJ"),
        ("node-1", "GPU-b", T0, 50.0, None, None, None)]
    assert q.gpu_hourly_usage(store.cursor(), since_ns=T0 + HOUR, until_ns=T0 + 2 * HOUR) == []


def test_model_usage_splits_small_requests(spend: DuckDBStore) -> None:
    rows = q.model_usage(spend.cursor(), since_ns=T0, until_ns=T0 + 2 * HOUR,
                         max_input_tokens=1000, max_output_tokens=100)
    assert rows == [("llm", "openai", "gpt-4o", 1, 0.25, 1, 100, 30, 10, 0.25),
                    ("llm", "openai", "gpt-4o-mini", 1, 0.5, 0, 0, 0, 0, 0.0)]
    assert q.model_usage(spend.cursor(), since_ns=T0, until_ns=T0 + MIN,
                         max_input_tokens=1000, max_output_tokens=100) == rows
    assert q.model_usage(spend.cursor(), since_ns=T0 + MIN, until_ns=T0 + HOUR,
                         max_input_tokens=1000, max_output_tokens=100) == []


def test_coverage_by_service_and_unknown_energy_groups(store: DuckDBStore) -> None:
    write(store, [
        span("t", 1, 2, service="a", request_model="gpt-4o-mini", output_tokens=5),
        span("g", 1, 2, service="a", request_model="llama", attributes={"server.address": "h"}),
        span("e", 1, 2, service="a", request_model="llama", attributes={"server.address": "h"}),
        span("u", 1, 2, service="b", request_model="acme"),
        span("w", 1, 2, service="b"),  # a workflow span: not a request
        span("late", 3700, 3701, service="b", request_model="acme"),
    ], costs=[(0.1, "token_price", 0.2, "estimated", None),
              (0.3, "gpu_time", 0.5, "measured", None),
              (0.3, "gpu_time_estimated", None, None, None), NO_COST, NO_COST, NO_COST])
    assert q.coverage_by_service(store.cursor(), since_ns=T0, until_ns=T0 + HOUR) == [
        ("a", 3, 1, 1, 1, 0, 1, 1, 1), ("b", 1, 0, 0, 0, 1, 0, 0, 1)]
    assert q.unknown_energy_groups(store.cursor(), since_ns=T0, until_ns=T0 + HOUR, limit=5) == [
        ("a", None, "llama", "h", None, None, 1, False), ("b", None, "acme", None, None, None, 1,
                                                          False)]
