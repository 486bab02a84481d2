"""Tests for the GPU pass, the cost reads and their rollup, and budgets, on a real DuckDB."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from strata.agent.config import Budget, Settings
from strata.agent.finops.budgets import budget_alerts, budget_status, month_bounds
from strata.agent.finops.gpu import apply_gpu_attribution, pending_gpu_window
from strata.agent.finops.reads import gpu_hours
from strata.agent.finops.report import refresh_cost_rollup, summarize
from strata.agent.model import AttributeValue, Layer, Sample, SpanRecord
from strata.agent.store.costs import cost_report, gpu_energy_summary
from strata.agent.store.db import CostColumns, DuckDBStore
from strata.agent.store.seam import DuckDBReports
from strata.agent.units import HOUR_NS

S = 1_000_000_000
T0 = 1_700_000_000 * S  # 2023-11-14T22:13:20Z
NODE, OTHER = "gpu-node-1", "gpu-node-2"
GPU_A, GPU_B = "GPU-aaaa", "GPU-bbbb"
SETTINGS = Settings(gpu_hour_usd=3.6, carbon_pue=1.5, carbon_grid_gco2e_per_kwh=400.0)


def _span(
    span_id: str, start_s: float, end_s: float, *, host: str | None = NODE,
    attributes: Mapping[str, AttributeValue] | None = None, team: str = "search",
    service: str = "llm", model: str | None = "llama-3.1-8b", trace: str = "a",
    tokens: tuple[int | None, int | None] = (None, None),
) -> SpanRecord:
    return SpanRecord(
        trace_id=trace * 32, span_id=span_id.rjust(16, "0"), parent_span_id=None, name=span_id,
        kind="server", start_unix_nano=T0 + int(start_s * S), end_unix_nano=T0 + int(end_s * S),
        status="ok", service=service, layer=Layer.SERVING, request_model=model, host=host,
        team=team, attributes=attributes or {}, input_tokens=tokens[0], output_tokens=tokens[1],
    )  # fmt: skip


def _energy(t_s: float, mj: float, *, host: str = NODE, device: str = GPU_A) -> Sample:
    return Sample("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", mj, "mJ", Layer.INFRASTRUCTURE,
                  T0 + int(t_s * S), {}, "gpu.energy.consumed", host, device)


def _costs(store: DuckDBStore) -> dict[str, tuple[object, ...]]:
    rows = store.cursor().execute(
        "SELECT span_id, cost_usd, cost_source, energy_wh, energy_source, co2e_g FROM spans"
    ).fetchall()
    return {r[0].lstrip("0"): r[1:] for r in rows}


@pytest.fixture(name="gpu_store")
def gpu_store_fixture(store: DuckDBStore) -> DuckDBStore:
    """GPU A: counter +1 Wh over [0, 10] s and +2 Wh over [10, 20] s; S1 [2, 8] and S2 [4, 14]
    overlap on it. S3 runs alone on unmetered GPU B, S4 on another host, H is a hosted call."""
    spans = [
        _span("1", 2, 8, attributes={"gpu.uuid": GPU_A}),
        _span("2", 4, 14, attributes={"gpu.uuid": GPU_A}, team="ads"),
        _span("3", 0, 20, attributes={"gpu.id": GPU_B}),
        _span("4", 5, 15, host=OTHER, attributes={"gpu.uuid": GPU_A}),
        _span("9", 1, 2, host="app", model="gpt-4o", tokens=(1000, 100)),
    ]
    hosted: CostColumns = (0.0035, "token_price", 0.5, "estimated", 0.3)
    costs: list[CostColumns] = [(None, None, None, None, None)] * 4 + [hosted]
    samples = [_energy(0, 0), _energy(10, 3_600_000), _energy(20, 10_800_000),
               _energy(0, 0, host=OTHER), _energy(20, 36_000_000, host=OTHER)]
    store.write_batch(spans, samples, costs=costs, received_ns=T0)
    return store


def test_gpu_pass_hand_computed(gpu_store: DuckDBStore) -> None:
    """GPU-time cost, measured energy and carbon per span match the hand computation.

    GPU A: [0,2] idle 0.2 Wh; [2,4] S1 0.2; [4,8] S1+S2 0.4 (0.2 each); [8,10] S2 0.2;
    [10,14] S2 0.8; [14,20] idle 1.2. So S1 0.4 Wh, S2 1.2 Wh, idle 1.4 Wh of 3 Wh.
    GPU seconds: S1 2 + 4/2 = 4 s, S2 4/2 + 6 = 8 s, S3 20 s, S4 10 s; $3.6/h = $0.001/s.
    Carbon: Wh x 1.5 x 400 / 1000 = Wh x 0.6. S4's host counter: 10 Wh over 20 s, 0.5 Wh/s.
    """
    written = apply_gpu_attribution(gpu_store, since_ns=T0, until_ns=T0 + 60 * S,
                                    settings=SETTINGS)
    assert written == 4
    got = _costs(gpu_store)
    expected = {
        "1": (0.004, "gpu_time", 0.4, "measured", 0.24),
        "2": (0.008, "gpu_time", 1.2, "measured", 0.72),
        "3": (0.020, "gpu_time", None, None, None),
        "4": (0.010, "gpu_time", 5.0, "measured", 3.0),
        "9": (0.0035, "token_price", 0.5, "estimated", 0.3),  # hosted: untouched
    }
    for span_id, row in expected.items():
        assert got[span_id] == pytest.approx(row), span_id
    [node, other] = gpu_energy_summary(gpu_store.cursor(), since_ns=T0 - S, until_ns=T0 + 60 * S)
    assert (node["host"], node["device"], node["intervals"]) == (NODE, GPU_A, 2)
    assert node["measured_wh"] == pytest.approx(3.0)
    assert node["idle_wh"] == pytest.approx(1.4)
    assert node["attributed_wh"] == pytest.approx(0.4 + 1.2)
    assert node["measured_wh"] - node["idle_wh"] == pytest.approx(node["attributed_wh"])
    assert node["idle_ns"] == 8 * S
    assert (other["measured_wh"], other["attributed_wh"]) == (pytest.approx(10.0),
                                                              pytest.approx(5.0))


def test_gpu_pass_is_idempotent_and_windows_compose(gpu_store: DuckDBStore) -> None:
    """Running twice, or as two windows split mid-way, gives the same columns and intervals."""
    apply_gpu_attribution(gpu_store, since_ns=T0, until_ns=T0 + 60 * S, settings=SETTINGS)
    once = _costs(gpu_store)
    intervals = gpu_store.cursor().execute("SELECT * FROM gpu_energy ORDER BY ALL").fetchall()
    apply_gpu_attribution(gpu_store, since_ns=T0, until_ns=T0 + 60 * S, settings=SETTINGS)
    assert _costs(gpu_store) == once
    apply_gpu_attribution(gpu_store, since_ns=T0, until_ns=T0 + 3 * S, settings=SETTINGS)
    apply_gpu_attribution(gpu_store, since_ns=T0 + 3 * S, until_ns=T0 + 60 * S,
                          settings=SETTINGS)
    assert _costs(gpu_store) == once
    assert gpu_store.cursor().execute("SELECT * FROM gpu_energy ORDER BY ALL").fetchall() == (
        intervals)


def test_token_weighting_shares_by_token_rate(store: DuckDBStore) -> None:
    """With weighting='tokens', two spans in flight together split energy by tokens/s."""
    spans = [_span("1", 0, 10, attributes={"gpu.uuid": GPU_A}, tokens=(100, 200)),
             _span("2", 0, 10, attributes={"gpu.uuid": GPU_A}, tokens=(50, 50))]
    store.write_batch(spans, [_energy(0, 0), _energy(10, 3_600_000)], received_ns=T0)
    apply_gpu_attribution(store, since_ns=T0, until_ns=T0 + 60 * S, settings=SETTINGS,
                          weighting="tokens")
    got = _costs(store)
    assert got["1"][2] == pytest.approx(0.75)
    assert got["2"][2] == pytest.approx(0.25)
    assert got["1"][0] == got["2"][0] == pytest.approx(0.005)  # GPU time still by time share


def test_cost_report_rollup_matches_raw_scan(gpu_store: DuckDBStore) -> None:
    """Grouping by team over whole hours gives the same figures from the rollup as raw."""
    apply_gpu_attribution(gpu_store, since_ns=T0, until_ns=T0 + 60 * S, settings=SETTINGS)
    since, until = T0 - T0 % HOUR_NS - HOUR_NS, T0 - T0 % HOUR_NS + 3 * HOUR_NS
    cur = gpu_store.cursor()
    raw = cost_report(cur, group_by="team", since_ns=since + 1, until_ns=until - 1)
    refresh_cost_rollup(gpu_store)
    rolled = cost_report(cur, group_by="team", since_ns=since, until_ns=until)
    assert [r["group"] for r in rolled] == ["ads", "search"]
    for a, b in zip(raw, rolled, strict=True):
        assert a["group"] == b["group"]
        for key in ("requests", "priced_requests", "usd", "energy_wh", "co2e_g"):
            assert a[key] == pytest.approx(b[key]), key
    search = summarize([r for r in rolled if r["group"] == "search"])
    assert search["usd"] == pytest.approx(0.004 + 0.020 + 0.010 + 0.0035)
    assert (search["requests"], search["unpriced_requests"]) == (4, 0)
    assert search["energy_wh_measured"] == pytest.approx(0.4 + 5.0)
    assert search["energy_wh_estimated"] == pytest.approx(0.5)
    # A span received after the refresh shows up at once (added from the spans table).
    gpu_store.write_batch([_span("7", 30, 31, model="unknown-model", trace="b")],
                          received_ns=T0 + 10 * S)
    after = summarize(cost_report(cur, group_by="team", since_ns=since, until_ns=until))
    assert (after["requests"], after["unpriced_requests"]) == (6, 1)


def test_cost_report_buckets_and_bound_attribute_group(gpu_store: DuckDBStore) -> None:
    """Minute buckets align to the epoch; an attribute group_by reads the JSON by bound path."""
    apply_gpu_attribution(gpu_store, since_ns=T0, until_ns=T0 + 60 * S, settings=SETTINGS)
    rows = cost_report(gpu_store.cursor(), group_by="gpu.uuid", since_ns=T0,
                       until_ns=T0 + 60 * S, bucket_ns=60 * S)
    assert {r["bucket_ns"] for r in rows} == {T0 - T0 % (60 * S)}
    by_gpu = {r["group"]: r["usd"] for r in rows}
    assert by_gpu[GPU_A] == pytest.approx(0.004 + 0.008 + 0.010)
    with pytest.raises(ValueError, match="group_by"):
        cost_report(gpu_store.cursor(), group_by="team; DROP TABLE spans", since_ns=T0,
                    until_ns=T0 + S)


def test_gpu_hours_utilisation_power_and_counter_energy(store: DuckDBStore) -> None:
    """Hourly means and the counter's increase across a reset, per GPU."""
    hour = T0 - T0 % HOUR_NS
    samples = [
        Sample("DCGM_FI_DEV_GPU_UTIL", u, "%", Layer.INFRASTRUCTURE, hour + i * 600 * S, {},
               "gpu.utilization", NODE, GPU_A) for i, u in enumerate((2.0, 4.0))
    ] + [
        Sample("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", v, "mJ", Layer.INFRASTRUCTURE,
               hour + i * 600 * S, {}, "gpu.energy.consumed", NODE, GPU_A)
        for i, v in enumerate((1_000_000.0, 4_600_000.0, 1_800_000.0))
    ]
    store.write_batch(samples=samples, received_ns=T0)
    [h] = gpu_hours(DuckDBReports(store), since_ns=hour, until_ns=hour + HOUR_NS)
    assert (h.host, h.device, h.hour_ns, h.utilization_pct) == (NODE, GPU_A, hour, 3.0)
    assert h.energy_wh == pytest.approx((3_600_000 + 1_800_000) / 3_600_000)


def test_budget_projection_and_alert(store: DuckDBStore) -> None:
    """$10/day for 7 days, 10 days into a 30-day month: spent 70, projected 70 + 20 x 10."""
    month_start = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp()) * S
    day = 86_400 * S
    spans = [_span(str(i + 1), 0, 1, host="app", model="gpt-4o", trace=f"{i:x}")
             for i in range(7)]
    spans = [SpanRecord(**{**{f: getattr(s, f) for f in s.__slots__},  # type: ignore[attr-defined]
                           "start_unix_nano": month_start + (3 + i) * day,
                           "end_unix_nano": month_start + (3 + i) * day + S})
             for i, s in enumerate(spans)]
    costs: list[CostColumns] = [(10.0, "token_price", None, None, None)] * 7
    store.write_batch(spans, costs=costs, received_ns=month_start)
    now = month_start + 10 * day
    assert month_bounds(now) == ("2026-11", month_start, month_start + 30 * day)
    status = budget_status(DuckDBReports(store), Budget("team", "search", 250.0), now_ns=now)
    assert status.spent_usd == pytest.approx(70.0)
    assert status.burn_usd_per_day == pytest.approx(10.0)
    assert status.projected_usd == pytest.approx(70.0 + 20 * 10.0)
    [alert] = budget_alerts([status], now_ns=now)
    assert (alert.kind, alert.severity) == ("budget_burn", "warning")
    assert budget_alerts([status], now_ns=now)[0].id == alert.id  # stable per budget and month
    fine = budget_status(DuckDBReports(store), Budget("team", "search", 300.0), now_ns=now)
    assert budget_alerts([fine], now_ns=now) == []
    other = budget_status(DuckDBReports(store), Budget("team", "ads", 1.0), now_ns=now)
    assert other.spent_usd == 0.0


def test_pending_gpu_window_follows_received_data(gpu_store: DuckDBStore) -> None:
    """New GPU spans or energy samples give the event-time window to re-price; none, None."""
    pad = 600 * S
    cur = gpu_store.cursor()
    assert pending_gpu_window(cur, received_since_ns=T0) == (T0 + 0 - pad, T0 + 20 * S + pad + 1)
    assert pending_gpu_window(cur, received_since_ns=T0 + 1) is None
    gpu_store.write_batch(samples=[_energy(30, 20_000_000)], received_ns=T0 + 5 * S)
    assert pending_gpu_window(cur, received_since_ns=T0 + 1) == (T0 + 30 * S - pad,
                                                                 T0 + 30 * S + pad + 1)
