"""Tests for strata.analytics.scoring (AnomalyScorer, streaming anomaly scores) and its parts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from strata.analytics import AnomalyScorer
from strata.analytics.scoring.calibration import OnsetFilter, TailCalibration
from strata.analytics.scoring.parts import RecentRate, RobustWindow, SeasonalProfile, TailWindow
from strata.analytics.scoring.scorer import anscombe, is_count_like

STEP_NS = 300 * 1_000_000_000  # 5-minute sampling, as in NAB's AWS series
MINUTE_NS = 60 * 1_000_000_000
DAY_NS = 86_400 * 1_000_000_000
DAY_POINTS = 288
# Midnight UTC, so point i of a day is at minute 5*i of that day.
T0_NS = 1_700_006_400 * 1_000_000_000 - (1_700_006_400 * 1_000_000_000) % DAY_NS
WARMUP = 150  # the scorer's default warm-up length
ALARM = 0.55  # above the NAB-optimal threshold (0.53) the defaults were tuned to


def run(values: list[float], *, start_ns: int = T0_NS, step_ns: int = STEP_NS) -> list[float]:
    """Scores of a fresh default scorer over *values* at regular steps."""
    scorer = AnomalyScorer()
    return [scorer.update(start_ns + i * step_ns, v) for i, v in enumerate(values)]


def noisy(n: int, seed: int) -> list[float]:
    """Stationary Gaussian noise around 10 with sigma 1 (seeded)."""
    return [float(v) for v in 10.0 + np.random.default_rng(seed).normal(0.0, 1.0, n)]


# --- building blocks -------------------------------------------------------------------


@pytest.mark.parametrize("capacity", [1, 2, 7, 50])
@pytest.mark.parametrize("kind", ["ties", "gauss", "heavy"])
def test_robust_window_statistics_match_numpy(capacity: int, kind: str) -> None:
    """Median, MAD, mean absolute deviation and contents equal a brute-force recomputation."""
    rng = np.random.default_rng(capacity)
    if kind == "ties":  # many equal values: the MAD is often 0
        stream = [float(v) for v in rng.choice([0.0, 0.0, 0.0, 1.0, 5.0], 400)]
    elif kind == "gauss":
        stream = [round(float(v), 1) for v in rng.normal(0.0, 3.0, 400)]
    else:
        stream = [float(v) for v in rng.standard_cauchy(400) * 1e8]
    window = RobustWindow(capacity)
    for i, x in enumerate(stream):
        window.push(x)
        kept = np.array(stream[max(0, i + 1 - capacity) : i + 1])
        center = float(np.median(kept))
        assert window.median() == center
        assert window.values() == kept.tolist()
        for probe in (center, center + 0.3, center - 1.7):
            expected = float(np.median(np.abs(kept - probe)))
            assert window.mad(probe) == pytest.approx(expected, rel=1e-12, abs=1e-12)
        expected_mean_ad = float(np.mean(np.abs(kept - center)))
        scale_of_values = 1.0 + float(np.max(np.abs(kept)))
        assert abs(window.mean_abs_dev_from_median() - expected_mean_ad) <= 1e-9 * scale_of_values


def test_robust_scale_falls_back_when_most_values_are_equal() -> None:
    """A MAD of 0 falls back to 1.2533 x mean absolute deviation, and 0 to the floor."""
    window = RobustWindow(10)
    for x in [0.0] * 8 + [10.0, 10.0]:
        window.push(x)
    center, scale = window.center_scale(1e-6)
    assert center == 0.0
    assert scale == pytest.approx(1.2533 * 2.0)  # mean |x - 0| = 2
    constant = RobustWindow(5)
    for _ in range(5):
        constant.push(3.0)
    assert constant.center_scale(1e-6) == (3.0, pytest.approx(1e-12 + 3e-6))


def test_robust_window_clear_forgets_everything() -> None:
    """After clear() the window behaves like a new one."""
    window = RobustWindow(4)
    for x in (5.0, 1.0, 9.0, 7.0, 3.0):
        window.push(x)
    window.clear()
    assert len(window) == 0
    window.push(2.0)
    assert window.values() == [2.0]
    assert window.center_scale(1e-6)[0] == 2.0


def test_tail_window_keeps_the_last_values_sorted() -> None:
    """The sorted view holds exactly the last n values, runs of equal values included."""
    rng = np.random.default_rng(11)
    stream = [float(v) for v in rng.integers(0, 6, 500)]
    window = TailWindow(13)
    for i, x in enumerate(stream):
        window.push(x)
        assert list(window.sorted) == sorted(stream[max(0, i - 12) : i + 1])


def test_seasonal_profile_shift_moves_learned_bins_only() -> None:
    """After a level change every learned bin moves by the change; empty bins stay empty."""
    profile = SeasonalProfile(86_400, 4, 0.5)
    profile.learn(0, 10.0, None)
    profile.learn(2, 20.0, None)
    profile.shift(5.0)
    assert (profile.expect(0), profile.expect(1), profile.expect(2)) == (15.0, None, 25.0)


def test_seasonal_profile_learns_one_period_the_same_at_any_cadence() -> None:
    """A day of 1-minute points moves a 15-minute bin as much as a single hourly point."""
    day_s = 86_400
    bin_ns = day_s * 1_000_000_000 // 96
    hourly = SeasonalProfile(day_s, 96, 0.3)
    minutely = SeasonalProfile(day_s, 96, 0.3)
    for profile in (hourly, minutely):
        profile.learn(0, 0.0, None)  # first value of the bin: taken as is
    hourly.learn(0, 10.0, 3_600 * 1_000_000_000)  # the gap counts up to a bin's width
    for _ in range(15):
        minutely.learn(0, 10.0, MINUTE_NS)
    assert hourly.expect(0) == pytest.approx(3.0)
    assert minutely.expect(0) == pytest.approx(3.0)
    assert hourly.bin_of(T0_NS + bin_ns + 1) == 1
    assert hourly.expect(5) is None


def test_recent_rate_counts_only_a_full_window() -> None:
    """The rate is None until the window is full, then the fraction of set flags."""
    rate = RecentRate(4)
    assert [rate.push(f) for f in (True, True, False)] == [None, None, None]
    assert rate.push(False) == 0.5
    assert rate.push(True) == 0.5  # the first True left
    assert rate.push(True) == 0.5
    assert rate.push(True) == 0.75


def test_tail_calibration_rates_against_the_fitted_tail() -> None:
    """Ratio = excess over the (k+1)-th largest / (mean excess of the top k * H_k)."""
    calibration = TailCalibration(history_window=5, min_history=4, tail_k=2, min_spans=(0.0, 0.0))
    for v in (1.0, 2.0, 3.0, 5.0):
        assert calibration.largest_ratio([v, None]) == 0.0  # too little history
    # sorted [1, 2, 3, 5]: edge 2, top-2 mean excess ((3 + 5) / 2 - 2) = 2, H_2 = 1.5 -> span 3
    assert calibration.largest_ratio([8.0, None]) == pytest.approx(2.0)
    # sorted [1, 2, 3, 5, 8]: edge 3, mean excess 3.5, span 5.25; at or below the edge: 0
    assert calibration.largest_ratio([3.0, None]) == 0.0
    # now [2, 3, 3, 5, 8] (1 left): edge 3 again
    assert calibration.largest_ratio([None, None]) == 0.0
    assert calibration.largest_ratio([13.5, None]) == pytest.approx(2.0)


def test_tail_calibration_threshold_is_a_false_alarm_rate() -> None:
    """On i.i.d. exponential values the share of ratios >= 1 matches (k/n)·exp(-H_k)."""
    calibration = TailCalibration(history_window=400, min_history=400, tail_k=20, min_spans=(0.0,))
    rng = np.random.default_rng(21)
    ratios = [calibration.largest_ratio([float(v)]) for v in rng.exponential(1.0, 60_000)][400:]
    expected = calibration.false_alarm_rate(1.0)
    observed = sum(r >= 1.0 for r in ratios) / len(ratios)
    assert expected == pytest.approx(20 / 400 * math.exp(-sum(1 / i for i in range(1, 21))))
    assert 0.5 * expected < observed < 2.0 * expected


def test_tail_calibration_min_span_sets_the_unit_of_a_count() -> None:
    """A count that was always 0 rates its first step against min_span, not infinity."""
    calibration = TailCalibration(history_window=10, min_history=3, tail_k=2, min_spans=(0.5,))
    for _ in range(5):
        assert calibration.largest_ratio([0.0]) == 0.0
    assert calibration.largest_ratio([0.5]) == pytest.approx(1.0)
    assert calibration.largest_ratio([1.0]) > 1.0


def test_count_detection_and_anscombe() -> None:
    """Non-negative integers that vary are counts; Anscombe gives Poisson noise variance ~1."""
    assert is_count_like([0.0, 3.0, 1.0, 12.0])
    assert not is_count_like([0.0, 0.0, 0.0])  # nothing varies: no evidence
    assert not is_count_like([1.0, 2.5, 3.0])
    assert not is_count_like([-1.0, 2.0, 3.0])
    rng = np.random.default_rng(22)
    for rate in (5.0, 50.0, 500.0):
        stabilised = [anscombe(float(v)) for v in rng.poisson(rate, 20_000)]
        assert float(np.var(stabilised)) == pytest.approx(1.0, abs=0.1)


def test_onset_filter_damps_after_an_alarm_but_lets_a_much_larger_one_through() -> None:
    """After an alarm the next scores are halved, except a ratio of 2 or more."""
    onsets = OnsetFilter(alarm_level=0.53, suppress=3, damp=0.5, breakthrough=2.0)
    assert onsets.score(1.5) == pytest.approx(0.6)  # alarm: the quiet period starts
    assert onsets.score(1.5) == pytest.approx(0.3)
    assert onsets.score(3.0) == pytest.approx(0.75)  # breaks through, restarts the quiet
    assert [onsets.score(1.5) for _ in range(3)] == [pytest.approx(0.3)] * 3
    assert onsets.score(1.5) == pytest.approx(0.6)  # quiet period over


# --- the scorer ----------------------------------------------------------------------


def test_scores_stay_in_unit_interval_on_hostile_input() -> None:
    """Every score is in [0, 1], even with constant runs, huge spikes and zeros."""
    rng = np.random.default_rng(1)
    values = [0.0] * 300 + [float(v) for v in rng.standard_cauchy(1500)]
    values[900] = 1e300
    values[901:1000] = [5.0] * 99
    values[1200:1210] = [-1e300] * 10
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


def test_changing_a_future_point_leaves_past_scores_alone() -> None:
    """Online: two series that differ from point 1200 on score identically before it."""
    values = noisy(1500, seed=12)
    changed = values[:1200] + [v + 50.0 for v in values[1200:]]
    a, b = run(values), run(changed)
    assert a[:1200] == b[:1200]
    assert a[1200] != b[1200]  # and the change itself is seen


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
    # Gaussian noise sets a new record now and then; allow 1% of points.
    assert sum(s > ALARM for s in normal) <= len(normal) // 100
    # after the spike its own feature values raise the reference: nothing echoes
    assert max(scores[901:]) < 0.5


def test_burst_of_moderate_spikes_alarms_where_each_spike_alone_would_not() -> None:
    """Spikes smaller than an earlier lone spike, but many at once, raise an alarm."""
    values = noisy(1400, seed=13)
    values[400] += 20.0  # one large lone spike sets a high reference for the point feature
    lone = run(values)
    burst = list(values)
    for i in range(1200, 1260, 5):  # twelve 7-sigma spikes in an hour
        burst[i] += 7.0
    scores = run(burst)
    assert max(lone[1200:1260]) < 0.5
    assert max(scores[1200:1260]) >= 0.53  # the default alarm_level: an alarm starts


def test_large_anomaly_right_after_a_small_one_is_not_hidden() -> None:
    """A 60-sigma spike 20 points after a first alarm still scores high."""
    values = noisy(1200, seed=14)
    values[1000] += 9.0
    values[1020] += 60.0
    scores = run(values)
    assert scores[1000] > ALARM  # the first alarm starts a quiet period...
    assert scores[1020] > 0.8  # ...that a much larger anomaly breaks through


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


def test_missing_daily_peak_alarms() -> None:
    """A day whose noon plateau does not come is a break of the season."""
    values = daily_series(8, seed=15)
    missing = 6 * DAY_POINTS + 144
    values[missing : missing + 24] = noisy(24, seed=16)  # day 6: no plateau
    scores = run(values)
    assert max(scores[missing : missing + 24]) > 0.75


def test_irregular_sampling_uses_timestamps_for_the_season() -> None:
    """Jittered, gappy sampling still learns the daily plateau from the timestamps."""
    rng = np.random.default_rng(9)
    scorer = AnomalyScorer()
    t = T0_NS
    peak_scores: list[float] = []
    spike_score = 0.0
    while t < T0_NS + 8 * DAY_NS:
        t += int(rng.integers(120, 600)) * 1_000_000_000  # 2 to 10 minutes apart
        minute_of_day = (t // MINUTE_NS) % 1440
        day = (t - T0_NS) // DAY_NS
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


def test_one_minute_latency_with_daily_cycle() -> None:
    """1-minute p95 latency: the daily cycle stays quiet, a spike and a step alarm."""
    rng = np.random.default_rng(17)
    minutes = np.arange(7 * 1440)
    latency = 0.2 + 0.05 * np.sin(2 * np.pi * minutes / 1440) + rng.normal(0.0, 0.004, minutes.size)
    values = [float(v) for v in latency]
    spike = 5 * 1440 + 300
    values[spike] += 0.08  # 20 sigma
    step = 6 * 1440 + 600
    values[step:] = [v + 0.04 for v in values[step:]]  # +10 sigma from then on
    scores = run(values, step_ns=MINUTE_NS)
    quiet = scores[2 * 1440 : spike]
    assert sum(s > ALARM for s in quiet) <= len(quiet) // 200
    assert scores[spike] > 0.75
    assert max(scores[step : step + 5]) > 0.75
    assert max(scores[step + 240 :]) < ALARM  # four hours later the new level is normal


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_score_zero_and_leave_state_untouched(bad: float) -> None:
    """A NaN/inf point scores 0 and the other points score as if it never came."""
    values = noisy(1000, seed=10)
    values[800] = 25.0
    clean = run(values)
    scorer = AnomalyScorer()
    dirty: list[float] = []
    for i, v in enumerate(values):
        if i in (100, 500):
            assert scorer.update(T0_NS + i * STEP_NS - STEP_NS // 2, bad) == 0.0
        dirty.append(scorer.update(T0_NS + i * STEP_NS, v))
    assert dirty == clean


@pytest.mark.parametrize(
    ("kwargs", "knob"),
    [
        ({"long_window": 0}, "long_window"),
        ({"outlier_window": 0}, "outlier_window"),
        ({"damp": 0.0}, "damp"),
        ({"alarm_level": 1.5}, "alarm_level"),
        ({"seasonal_alpha": 0.0}, "seasonal_alpha"),
        ({"breakthrough": -1.0}, "breakthrough"),
        ({"outlier_z": 0.0}, "outlier_z"),
    ],
)
def test_invalid_tunables_are_rejected_by_name(kwargs: dict[str, float], knob: str) -> None:
    """A bad tunable raises ValueError naming it."""
    with pytest.raises(ValueError, match=knob):
        AnomalyScorer(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("shift_frac", [1.0, 0.8, 0.6])
def test_daily_plateau_is_no_regime_change_and_its_absence_alarms(shift_frac: float) -> None:
    """A 10-hour daily plateau (+60 on 20, sigma 1) lies beyond shift_z for longer than
    shift_len points every day; it must not re-baseline the series (it did, every day,
    which left the missing plateau of day 6 scoring 0 with shift_frac 1.0). The missing
    plateau alarms at once whatever shift_frac, and at most one other point alarms from day 2 on."""
    rng = np.random.default_rng(8)
    values = [
        20.0 + (60.0 if 108 <= i % DAY_POINTS < 228 else 0.0) + float(rng.normal(0.0, 1.0))
        for i in range(8 * DAY_POINTS)
    ]
    missing = 6 * DAY_POINTS + 108  # day 6, 09:00
    values[missing : missing + 120] = [v - 60.0 for v in values[missing : missing + 120]]
    scorer = AnomalyScorer(shift_frac=shift_frac)
    scores = [scorer.update(T0_NS + i * STEP_NS, v) for i, v in enumerate(values)]
    assert max(scores[missing : missing + 6]) > 0.9
    quiet = scores[2 * DAY_POINTS : missing] + scores[missing + 120 :]
    assert sum(s >= 0.6 for s in quiet) <= 1


def daily_counts(seed: int, shift_at: int, factor: float) -> list[float]:
    """Poisson counts per 5 minutes, 2 a bucket at night to ~200 at the daily peak, for
    8 days; from point *shift_at* on the rate is multiplied by *factor* (seeded)."""
    rng = np.random.default_rng(seed)
    i = np.arange(8 * DAY_POINTS)
    rate = 2.0 + 200.0 * np.maximum(0.0, np.sin(2.0 * np.pi * i / DAY_POINTS)) ** 2
    rate[shift_at:] *= factor
    return [float(v) for v in rng.poisson(rate)]


@pytest.mark.parametrize("seed", [31, 32, 33])
def test_bursty_counts_alarm_rarely_yet_a_doubling_alarms(seed: int) -> None:
    """Counts whose noise grows with their daily peak: at most a few alarms in 6 days (at
    the calibrated rate, ~1 expected at 0.6), the rate doubling at a busy hour alarms at
    once, and a day later the new level is normal."""
    shift = 6 * DAY_POINTS + 100  # a busy hour
    values = daily_counts(seed, shift, 2.0)
    scorer = AnomalyScorer()
    scores = [scorer.update(T0_NS + i * STEP_NS, v) for i, v in enumerate(values)]
    assert scorer.counts
    normal = scores[WARMUP:shift]
    assert sum(s >= 0.6 for s in normal) <= 3
    assert scorer.false_alarm_rate(0.6) * 6 * len(normal) < 3  # what "calibrated" promises
    assert max(scores[shift : shift + 12]) > 0.7
    assert max(scores[shift + DAY_POINTS :]) < 0.6


def test_low_rate_counts_stay_quiet_and_a_burst_alarms() -> None:
    """About one event per 5 minutes (mostly 0s and 1s): 0 to 4 events are ordinary, so
    a week raises at most two alarms; a burst of 12 events in one bucket alarms."""
    rng = np.random.default_rng(34)
    values = [float(v) for v in rng.poisson(1.0, 7 * DAY_POINTS)]
    burst = 6 * DAY_POINTS + 50
    values[burst] = 12.0
    scorer = AnomalyScorer()
    scores = [scorer.update(T0_NS + i * STEP_NS, v) for i, v in enumerate(values)]
    assert scorer.counts
    assert sum(s >= 0.6 for s in scores[:burst]) <= 2
    assert scores[burst] > 0.6


def test_noisy_regime_change_is_re_baselined() -> None:
    """After a +8-sigma step in heavy-tailed noise (not every point beyond shift_z) the
    new level becomes the baseline: the step stops alarming, and a dip back to the old
    level days later is itself an anomaly (against the old baseline it would look normal).
    """
    rng = np.random.default_rng(35)
    values = [float(v) for v in 10.0 + rng.standard_t(3, 3000)]
    values[1500:] = [v + 8.0 for v in values[1500:]]
    values[2500:2506] = [v - 8.0 for v in values[2500:2506]]
    scores = run(values)
    assert max(scores[1500:1506]) > 0.6
    assert sum(s >= 0.6 for s in scores[1500 + 72 : 2500]) <= 1  # from six hours on
    assert max(scores[2500:2506]) > 0.6
