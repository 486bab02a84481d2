"""Tests for analytics.rightsizing: idle GPU runs and cheaper models, with hand-computed money."""

from __future__ import annotations

import pytest
from strata.analytics.pricing import PriceTable
from strata.analytics.rightsizing import (
    GPUHour,
    ModelProfile,
    cheaper_model_findings,
    idle_gpu_findings,
)

H = 3_600_000_000_000
PRICES = PriceTable.from_toml(
    """
    [providers.acme]
    as_of = "2026-01-01"
    source = "https://example.test/prices"
    [[models]]
    provider = "acme"
    id = "big"
    family = "f"
    tier = 3
    input_usd_per_mtok = 10.0
    output_usd_per_mtok = 30.0
    [[models]]
    provider = "acme"
    id = "mid"
    family = "f"
    tier = 2
    input_usd_per_mtok = 1.0
    output_usd_per_mtok = 3.0
    [[models]]
    provider = "acme"
    id = "tiny"
    family = "f"
    tier = 1
    input_usd_per_mtok = 0.1
    output_usd_per_mtok = 0.3
    """,
    origin="test",
)


def _hour(i: int, util: float | None, energy: float | None = 100.0, power: float | None = None,
          device: str = "GPU-0") -> GPUHour:
    return GPUHour("node", device, i * H, util, power, energy)


def test_idle_run_wastes_gpu_hours_and_measured_energy() -> None:
    """Three idle hours: 3 x $2 and the 300 Wh the counter measured in them."""
    hours = [_hour(0, 80), _hour(1, 1), _hour(2, 2), _hour(3, 0.5), _hour(4, 90)]
    [finding] = idle_gpu_findings(hours, gpu_hour_usd=2.0)
    assert finding.kind == "gpu_idle"
    assert (finding.start_ns, finding.end_ns, finding.hours) == (1 * H, 4 * H, 3)
    assert finding.waste_usd == pytest.approx(6.0)
    assert (finding.waste_wh, finding.waste_wh_source) == (pytest.approx(300.0), "measured")


def test_underused_run_wastes_the_unused_share() -> None:
    """Hours at 20% and 10%: waste is 0.8 + 0.9 GPU-hours, of the power-draw energy."""
    hours = [_hour(0, 20, energy=None, power=150.0), _hour(1, 10, energy=None, power=100.0)]
    [finding] = idle_gpu_findings(hours, gpu_hour_usd=3.0)
    assert finding.kind == "gpu_underused"
    assert finding.waste_usd == pytest.approx(3.0 * (0.8 + 0.9))
    assert finding.waste_wh == pytest.approx(150.0 * 0.8 + 100.0 * 0.9)
    assert finding.waste_wh_source == "estimated"


def test_short_or_broken_runs_are_not_findings() -> None:
    """One low hour, or two low hours with a gap between them, is no finding."""
    hours = [_hour(0, 1), _hour(1, 50), _hour(3, 1), _hour(5, 1)]
    assert idle_gpu_findings(hours, gpu_hour_usd=2.0) == []


def test_unknown_gpu_price_and_energy_stay_unknown() -> None:
    """Without a GPU-hour price or any energy reading, waste is None, not 0."""
    [finding] = idle_gpu_findings([_hour(0, 0, energy=None), _hour(1, 0, energy=None)],
                                  gpu_hour_usd=None)
    assert (finding.waste_usd, finding.waste_wh) == (None, None)


def test_cheaper_model_saving_is_hand_computed() -> None:
    """100 small requests of 'big' (1000 in, 100 out each) would cost 0.13 on 'mid', not 1.3."""
    profile = ModelProfile("rag", "acme", "big", requests=150, usd=2.0, small_requests=100,
                           small_input_tokens=100_000, small_cache_read_tokens=0,
                           small_output_tokens=10_000, small_usd=1.3)
    [finding] = cheaper_model_findings([profile], PRICES)
    assert (finding.kind, finding.suggested_model, finding.requests) == ("cheaper_model", "mid",
                                                                          100)
    # mid: 100k x $1/M + 10k x $3/M = 0.1 + 0.03
    assert finding.saving_usd == pytest.approx(1.3 - 0.13)


def test_smallest_or_unknown_models_have_no_finding() -> None:
    """The tier-1 model has nothing cheaper; an unpriced model is skipped."""
    tiny = ModelProfile("rag", "acme", "tiny", 10, 1.0, 10, 1000, 0, 100, 1.0)
    unknown = ModelProfile("rag", "acme", "mystery-7b", 10, 1.0, 10, 1000, 0, 100, 1.0)
    assert cheaper_model_findings([tiny, unknown], PRICES) == []
