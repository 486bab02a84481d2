"""Tests for analytics.scorer.AnomalyScorer (streaming anomaly scores)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analytics import AnomalyScorer

STEP_NS = 300 * 1_000_000_000  # 5-minute sampling, as in NAB's AWS series
DAY_POINTS = 288
# Midnight UTC, so point i of a day is at minute 5*i of that day.
T0_NS = 1_700_006_400 * 1_000_000_000 - (1_700_006_400 * 1_000_000_000) % (86_400 * 10**9)
WARMUP = 150  # the scorer's default warm-up length
ALARM = 0.55  # above the NAB-optimal threshold (0.52) the defaults were tuned to


def run(values: list[float], *, start_ns: int = T0_NS, step_ns: int = STEP_NS) -> list[float]:
    """Scores of a fresh default scorer over *values* at regular steps."""
    scorer = AnomalyScorer()
    return [scorer.update(start_ns + i * step_ns, v) for i, v in enumerate(values)]


def noisy(n: int, seed: int) -> list[float]:
    """Stationary Gaussian noise around 10 with sigma 1 (seeded)."""
    return [float(v) for v in 10.0 + np.random.default_rng(seed).normal(0.0, 1.0, n)]


def test_scores_stay_in_unit_interval_on_hostile_input() -> None:
    """Every score is in [0, 1], even with constant runs, huge spikes and zeros."""
    rng = np.random.default_rng(1)
    values = [0.0] * 300 + [float(v) for v in rng.standard_cauchy(1500)]
    values[900] = 1e300
    values[901:1000] = [5.0] * 99
    scores = run(values)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert max(scores) > 0.5  # the input does contain anomalies: not a constant 0


def test_warmup_scores_are_zero() -> None:
    """The first 150 points score exactly 0, even a spike among them."""
    values = noisy(200, seed=2)
    values[100] = 1000.0
    assert run(values)[:WARMUP] == [0.0] * WARMUP


def test_prefix_scores_do_not_change_when_points_are_appended() -> None:
    """Online: scoring 1500 points gives the 900-point prefix's scores unchanged."""
    values = noisy(1500, seed=3)
    values[950] = 30.0  # a future anomaly must not leak backwards
    full = run(values)
    prefix = run(values[:900])
    assert full[:900] == prefix


def test_same_input_gives_identical_scores() -> None:
    """Deterministic: two scorers fed the same points agree bit for bit."""
    values = noisy(1200, seed=4)
    values[700] = 25.0
    assert run(values) == run(values)


def test_spike_after_noisy_stationary_period_scores_high() -> None:
    """A 15-sigma spike scores > 0.8; the stationary noise itself rarely reaches 0.55."""
    values = noisy(1000, seed=5)
    values[900] = 25.0
    scores = run(values)
    assert scores[900] > 0.8
    normal = scores[WARMUP:900]
    # Gaussian noise sets a new 3.5-day record now and then; allow 1% of points.
    assert sum(s > ALARM for s in normal) <= len(normal) // 100
    # after the spike its own feature values raise the reference: nothing echoes
    assert max(scores[901:]) < 0.5


def test_level_shift_is_flagged_then_readapts() -> None:
    """A +10-sigma step is flagged at once, and a day later nothing alarms."""
    values = noisy(2000, seed=6)
    values[1000:] = [v + 10.0 for v in values[1000:]]
    scores = run(values)
    assert max(scores[1000:1006]) > 0.7
    assert max(scores[1000 + DAY_POINTS :]) < 0.5


def daily_series(days: int, seed: int) -> list[float]:
    """Noise around 10 with a +20 plateau from 12:00 to 14:00 every day."""
    rng = np.random.default_rng(seed)
    return [
        10.0 + (20.0 if 144 <= i % DAY_POINTS < 168 else 0.0) + float(rng.normal(0.0, 1.0))
        for i in range(days * DAY_POINTS)
    ]


def test_daily_peak_is_learned_but_off_season_spike_alarms() -> None:
    """After 4 days the noon plateau stays below 0.55; the same value at 03:00 scores > 0.75."""
    values = daily_series(8, seed=8)
    spike = 6 * DAY_POINTS + 36  # day 6, 03:00: the plateau's level at the wrong hour
    values[spike] = 30.0
    scores = run(values)
    for day in range(4, 8):
        start = day * DAY_POINTS + 144
        assert max(scores[start : start + 26]) < ALARM, f"plateau alarmed on day {day}"
    # 30 is an ordinary value for this series; only the time of day makes it odd
    assert scores[spike] > 0.75


def test_irregular_sampling_uses_timestamps_for_the_season() -> None:
    """Jittered, gappy sampling still learns the daily plateau from the timestamps."""
    rng = np.random.default_rng(9)
    scorer = AnomalyScorer()
    t = T0_NS
    peak_scores: list[float] = []
    spike_score = 0.0
    while t < T0_NS + 8 * 86_400 * 10**9:
        t += int(rng.integers(120, 600)) * 1_000_000_000  # 2 to 10 minutes apart
        minute_of_day = (t // 60_000_000_000) % 1440
        day = (t - T0_NS) // (86_400 * 10**9)
        base = 30.0 if 720 <= minute_of_day < 840 else 10.0
        if day == 6 and 180 <= minute_of_day < 190:
            spike_score = max(spike_score, scorer.update(t, 30.0))
            continue
        score = scorer.update(t, base + float(rng.normal(0.0, 1.0)))
        if day >= 4 and 720 <= minute_of_day < 840:
            peak_scores.append(score)
    assert peak_scores  # the plateau was sampled
    assert max(peak_scores) < ALARM
    assert spike_score > 0.75


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_score_zero_and_leave_state_untouched(bad: float) -> None:
    """A NaN/inf point scores 0 and the other points score as if it never came."""
    values = noisy(1000, seed=10)
    values[800] = 25.0
    clean = run(values)
    scorer = AnomalyScorer()
    dirty: list[float] = []
    for i, v in enumerate(values):
        if i == 500:
            assert scorer.update(T0_NS + i * STEP_NS - STEP_NS // 2, bad) == 0.0
        dirty.append(scorer.update(T0_NS + i * STEP_NS, v))
    assert dirty == clean


@pytest.mark.parametrize(
    ("kwargs", "knob"),
    [
        ({"long_window": 0}, "long_window"),
        ({"damp": 0.0}, "damp"),
        ({"alarm_level": 1.5}, "alarm_level"),
    ],
)
def test_invalid_tunables_are_rejected_by_name(kwargs: dict[str, float], knob: str) -> None:
    """A bad tunable raises ValueError naming it."""
    with pytest.raises(ValueError, match=knob):
        AnomalyScorer(**kwargs)  # type: ignore[arg-type]
