"""Tests for analytics.attribution: measured and estimated energy, GPU-time cost, carbon."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from strata.agent.model import AttributeValue, Layer, Sample, SpanRecord
from strata.analytics.attribution import (
    attribute_costs,
    attribute_energy,
    carbon_g,
    gpu_keys_of,
    gpu_time_shares,
    request_metrics,
    span_cost,
    span_key,
)
from strata.analytics.pricing import PriceTable

S = 1_000_000_000  # ns per second
HOST = "gpu-node-1"
GPU = "GPU-7b6d3f0e-8c2a-4a51-9a3e-1f2d3c4b5a69"


def _span(
    span_id: str,
    start_s: float,
    end_s: float,
    *,
    host: str | None = HOST,
    attributes: Mapping[str, AttributeValue] | None = None,
    model: str = "meta-llama/Llama-3.1-8B-Instruct",
    provider: str = "vllm",
    tokens: tuple[int | None, int | None] = (None, None),
) -> SpanRecord:
    return SpanRecord(
        trace_id="0" * 31 + span_id[-1],
        span_id=span_id.rjust(16, "0"),
        parent_span_id=None,
        name=f"chat {model}",
        kind="server",
        start_unix_nano=int(start_s * S),
        end_unix_nano=int(end_s * S),
        status="ok",
        service="llm",
        layer=Layer.SERVING,
        provider=provider,
        request_model=model,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        host=host,
        attributes={"gpu.uuid": GPU} if attributes is None else attributes,
    )


def _energy(t_s: float, value: float, *, unit: str = "mJ", device: str = GPU) -> Sample:
    return Sample(
        name="gpu.energy",
        value=value,
        unit=unit,
        layer=Layer.INFRASTRUCTURE,
        time_unix_nano=int(t_s * S),
        host=HOST,
        device=device,
    )


# One GPU, 10 Wh (36,000,000 mJ) over 10 s, i.e. 1 Wh per second.
# A runs 0-6 s, B runs 4-8 s, nothing runs 8-10 s:
#   0-4 s A alone (4 Wh), 4-6 s A and B (1 Wh each), 6-8 s B alone (2 Wh), 8-10 s idle (2 Wh).
SAMPLES = [_energy(0, 1_000_000_000), _energy(10, 1_036_000_000)]
A = _span("a", 0, 6)
B = _span("b", 4, 8)


def test_overlapping_requests_share_the_measured_delta() -> None:
    """A gets 4 + 1 Wh, B gets 1 + 2 Wh, 2 Wh are idle; attributed == measured - idle."""
    result = attribute_energy([A, B], SAMPLES)
    assert result.spans[span_key(A)].energy_wh == pytest.approx(5.0)
    assert result.spans[span_key(B)].energy_wh == pytest.approx(3.0)
    (gpu,) = result.gpus
    assert (gpu.host, gpu.device) == (HOST, GPU)
    assert gpu.measured_wh == pytest.approx(10.0)
    assert gpu.idle_wh == pytest.approx(2.0)
    assert gpu.idle_ns == 2 * S
    assert gpu.attributed_wh == pytest.approx(8.0)
    attributed = sum(share.energy_wh for share in result.spans.values())
    assert attributed == pytest.approx(gpu.measured_wh - gpu.idle_wh)


def test_idle_power_baseline_is_booked_as_idle() -> None:
    """At 360 W idle (0.1 Wh/s), busy seconds attribute only 0.9 Wh each."""
    result = attribute_energy([A, B], SAMPLES, idle_power_w=360.0)
    # A: 0-4 s 4*0.9 = 3.6, 4-6 s half of 2*0.9 = 0.9 -> 4.5
    # B: 4-6 s 0.9, 6-8 s 2*0.9 = 1.8 -> 2.7
    assert result.spans[span_key(A)].energy_wh == pytest.approx(4.5)
    assert result.spans[span_key(B)].energy_wh == pytest.approx(2.7)
    (gpu,) = result.gpus
    assert gpu.idle_wh == pytest.approx(2.0 + 8 * 0.1)  # idle 8-10 s + baseline over 0-8 s
    assert gpu.measured_wh - gpu.idle_wh == pytest.approx(4.5 + 2.7)


def test_token_weighting_shares_by_token_rate() -> None:
    """Two requests over the same 10 s with 300 and 100 tokens split 10 Wh 7.5 / 2.5."""
    heavy = _span("c", 0, 10, tokens=(100, 200))
    light = _span("d", 0, 10, tokens=(40, 60))
    result = attribute_energy([heavy, light], SAMPLES, weighting="tokens")
    assert result.spans[span_key(heavy)].energy_wh == pytest.approx(7.5)
    assert result.spans[span_key(light)].energy_wh == pytest.approx(2.5)
    assert result.gpus[0].idle_wh == pytest.approx(0.0)


def test_counter_reset_counts_the_new_reading() -> None:
    """7200 J -> 10800 J -> reset to 1800 J -> 5400 J gives 1 + 0.5 + 1 Wh."""
    samples = [
        _energy(0, 7200, unit="J"),
        _energy(10, 10800, unit="J"),
        _energy(20, 1800, unit="J"),
        _energy(30, 5400, unit="J"),
    ]
    span = _span("e", 5, 25)
    result = attribute_energy([span], samples)
    (gpu,) = result.gpus
    assert gpu.counter_resets == 1
    assert gpu.measured_wh == pytest.approx(2.5)
    # 5-10 s at 0.1 Wh/s, 10-20 s at 0.05 Wh/s, 20-25 s at 0.1 Wh/s
    assert result.spans[span_key(span)].energy_wh == pytest.approx(0.5 + 0.5 + 0.5)
    assert result.spans[span_key(span)].covered_ns == 20 * S
    assert gpu.idle_wh == pytest.approx(1.0)  # 0-5 s and 25-30 s
    assert result.spans[span_key(span)].energy_wh == pytest.approx(gpu.measured_wh - gpu.idle_wh)


def test_spans_on_other_gpus_or_hosts_get_nothing() -> None:
    """Only spans on this host and this GPU share its energy."""
    other_gpu = _span("f", 0, 10, attributes={"gpu.uuid": "GPU-other"})
    other_host = _span("g", 0, 10, host="gpu-node-2")
    no_gpu = _span("h", 0, 10, attributes={})
    result = attribute_energy([A, other_gpu, other_host, no_gpu], SAMPLES)
    assert set(result.spans) == {span_key(A)}
    assert result.spans[span_key(A)].energy_wh == pytest.approx(6.0)  # alone 0-6 s
    assert result.gpus[0].idle_wh == pytest.approx(4.0)


def test_gpu_keys_come_from_host_and_gpu_attributes() -> None:
    """gpu.uuid / gpu.id (lists too) on the span, else on the resource, pick the GPUs."""
    tp = _span("i", 0, 1, attributes={"gpu.id": [0, 1]})
    assert gpu_keys_of(tp) == ((HOST, "0"), (HOST, "1"))
    assert gpu_keys_of(_span("j", 0, 1, host=None)) == ()


def test_unknown_energy_unit_is_rejected() -> None:
    """A counter in an unknown unit is an error, not a guess."""
    with pytest.raises(ValueError, match="unit"):
        attribute_energy([A], [_energy(0, 1, unit="W"), _energy(1, 2, unit="W")])


def test_gpu_time_shares_split_concurrent_time() -> None:
    """A: 4 s alone + half of 2 s = 5 s; B: half of 2 s + 2 s alone = 3 s."""
    shares = gpu_time_shares([A, B])
    assert shares == {span_key(A): pytest.approx(5.0), span_key(B): pytest.approx(3.0)}


def test_carbon_applies_pue_and_grid_intensity() -> None:
    """10 Wh x PUE 1.2 x 400 g/kWh / 1000 = 4.8 gCO2e."""
    assert carbon_g(10.0, pue=1.2, grid_gco2e_per_kwh=400) == pytest.approx(4.8)
    with pytest.raises(ValueError, match="pue"):
        carbon_g(10.0, pue=0.9, grid_gco2e_per_kwh=400)


def test_self_hosted_spans_are_priced_by_gpu_time_and_measured_energy() -> None:
    """At $3.60/GPU-hour A's 5 GPU-seconds cost $0.005; its 5 Wh emit 2.4 g."""
    prices = PriceTable.packaged()
    energy = attribute_energy([A, B], SAMPLES)
    costs = attribute_costs(
        [A, B], prices=prices, energy=energy, gpu_hour_usd=3.6, pue=1.2, grid_gco2e_per_kwh=400
    )
    a = costs[span_key(A)]
    assert (a.usd_source, a.priced, a.energy_source) == ("gpu_time", True, "measured")
    assert a.usd == pytest.approx(0.005)
    assert a.energy_wh == pytest.approx(5.0)
    assert a.co2e_g == pytest.approx(2.4)
    assert costs[span_key(B)].usd == pytest.approx(0.003)
    unpriced = attribute_costs([A, B], prices=prices, energy=energy)[span_key(A)]
    assert (unpriced.usd, unpriced.priced, unpriced.co2e_g) == (None, False, None)
    assert unpriced.energy_wh == pytest.approx(5.0)


def test_hosted_span_uses_token_price_and_estimated_energy() -> None:
    """gpt-4o, 10k input incl. 4k cached, 1k output: $0.03 and 1k x 2.483 Wh, estimated."""
    span = SpanRecord(
        trace_id="1" * 32,
        span_id="2" * 16,
        parent_span_id=None,
        name="chat gpt-4o",
        kind="client",
        start_unix_nano=0,
        end_unix_nano=2 * S,
        status="ok",
        service="rag",
        layer=Layer.MODEL,
        provider="openai",
        response_model="gpt-4o-2024-08-06",
        input_tokens=10_000,
        output_tokens=1_000,
        cache_read_tokens=4_000,
    )
    cost = span_cost(span, prices=PriceTable.packaged(), pue=1.2, grid_gco2e_per_kwh=400)
    assert (cost.usd_source, cost.energy_source) == ("token_price", "estimated")
    assert cost.usd == pytest.approx(0.03)
    assert cost.energy_wh == pytest.approx(2.483)
    assert cost.energy_note is not None
    assert "EcoLogits" in cost.energy_note
    assert cost.co2e_g == pytest.approx(2.483 * 1.2 * 400 / 1000)


def test_unknown_hosted_model_is_unpriced_with_unknown_energy() -> None:
    """A model outside the table has no cost and no energy: None, never 0."""
    span = _span("k", 0, 1, host=None, attributes={}, model="mystery-1", provider="acme")
    cost = span_cost(span, prices=PriceTable.packaged(), pue=1.2, grid_gco2e_per_kwh=400)
    assert (cost.usd, cost.priced, cost.energy_wh, cost.co2e_g) == (None, False, None, None)


def test_request_metrics_average_over_known_energy() -> None:
    """5 Wh and 3 Wh for 1000 and 1500 tokens: 4 Wh/request, 11.52 J/token, 1.92 g/request."""
    a = _span("l", 0, 6, tokens=(200, 800))
    b = _span("m", 4, 8, tokens=(500, 1000))
    energy = attribute_energy([a, b], SAMPLES)
    costs = attribute_costs(
        [a, b], prices=PriceTable.packaged(), energy=energy, pue=1.2, grid_gco2e_per_kwh=400
    )
    metrics = request_metrics([a, b], costs)
    assert metrics.requests == 2
    assert metrics.wh_per_request == pytest.approx(4.0)
    assert metrics.j_per_token == pytest.approx(8.0 * 3600 / 2500)
    assert metrics.gco2e_per_request == pytest.approx((2.4 + 1.44) / 2)


def test_sweep_energy_matches_attribute_energy_on_random_spans() -> None:
    """The GPU pass's prefix-sum sweep gives attribute_energy's figures (time and tokens)."""
    import numpy as np
    from strata.analytics.attribution import sweep_energy, sweep_gpu_seconds

    rng = np.random.default_rng(3)
    spans = []
    for i in range(60):
        start = float(rng.uniform(-5, 95))
        tokens = (None, None) if i % 7 == 0 else (int(rng.integers(10, 900)),
                                                  int(rng.integers(1, 300)))
        spans.append(_span(f"{i:x}", start, start + float(rng.uniform(0, 12)), tokens=tokens))
    readings = [(t, float(v)) for t, v in zip(range(0, 101, 10),
                                              np.cumsum(rng.uniform(0, 5e6, 11)), strict=True)]
    readings[6] = (60, 1000.0)  # a counter reset
    samples = [_energy(t, v) for t, v in readings]
    starts = np.array([s.start_unix_nano for s in spans])
    ends = np.array([s.end_unix_nano for s in spans])
    times = np.array([s.time_unix_nano for s in samples])
    counter = np.array([s.value / 3_600_000 for s in samples])
    for weighting, idle in (("time", None), ("tokens", 40.0)):
        expected = attribute_energy(spans, samples, weighting=weighting, idle_power_w=idle)
        rates = np.array([np.nan if s.input_tokens is None else
                          (s.input_tokens + (s.output_tokens or 0)) / s.duration_ns
                          for s in spans])
        got = sweep_energy(starts, ends, times, counter, idle_power_w=idle,
                           token_rates=rates if weighting == "tokens" else None)
        for i, span in enumerate(spans):
            share = expected.spans.get(span_key(span))
            assert got.span_wh[i] == pytest.approx(share.energy_wh if share else 0.0, abs=1e-12)
            assert got.covered_ns[i] == (share.covered_ns if share else 0)
        [gpu] = expected.gpus
        assert sum(r[4] for r in got.interval_rows) == pytest.approx(gpu.idle_wh)
        assert sum(r[2] for r in got.interval_rows) == pytest.approx(gpu.measured_wh)
        assert sum(r[6] for r in got.interval_rows) == gpu.counter_resets == 1
    seconds = gpu_time_shares(spans)
    swept = sweep_gpu_seconds(starts, ends)
    for i, span in enumerate(spans):
        assert swept[i] == pytest.approx(seconds.get(span_key(span), 0.0), abs=1e-9)
