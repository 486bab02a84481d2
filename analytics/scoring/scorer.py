"""Streaming anomaly scoring of one univariate series (see :class:`AnomalyScorer`)."""

from __future__ import annotations

import math
from collections import deque

from strata.agent.units import NS_PER_S
from strata.analytics.scoring.calibration import OnsetFilter, TailCalibration
from strata.analytics.scoring.parts import RecentRate, RobustWindow, SeasonalProfile

DAY_S = 86_400
WEEK_S = 7 * DAY_S
WEEK_BINS = 168  # one per hour of the week
SCALE_FLOOR_REL = 1e-6  # scale floor relative to the largest |value| in a window
# Feature slots, in the order the calibration sees them.
POINT, SHORT_MEAN, MID_MEAN, OUTLIER_RATE, DAY_RESIDUAL, WEEK_RESIDUAL = range(6)
FEATURES = 6
# A season "expects" a point at most this share as far from it as the baseline's median.
SEEN_BEFORE = 0.5
ANSCOMBE_SHIFT = 3.0 / 8.0  # 2 * sqrt(x + 3/8) has variance ~1 for Poisson counts


def anscombe(x: float) -> float:
    """Variance-stabilising transform of a count (odd-symmetric, so any input is defined)."""
    return math.copysign(2.0 * math.sqrt(abs(x) + ANSCOMBE_SHIFT), x)


def is_count_like(values: list[float]) -> bool:
    """Whether *values* look like event counts: non-negative integers, not all equal."""
    return all(v >= 0.0 and v.is_integer() for v in values) and min(values) != max(values)


class AnomalyScorer:
    """Online anomaly score in [0, 1] for one series, one point at a time.

    Algorithm (per point: a binary search and one memmove in each sorted
    window, the rest O(1); plain Python floats, no randomness, no clock):

    0. **Count noise.** The first ``warmup`` points are held back. If they
       are all non-negative integers, not all equal, the series counts
       events, and (with ``count_noise``) every value from the first on is
       replaced by its Anscombe transform ``2·sqrt(x + 3/8)``: Poisson noise
       then has variance ~1 at any rate, so the quiet hours and the busy
       hours of a bursty count share one noise scale, and a heavy upper tail
       is compressed. The decision is made once; the held-back points are
       then replayed through the steps below (they score 0 as warm-up).
    1. **Features.** Each point is compared with the past only. A robust
       baseline (median and 1.4826·MAD, falling back to 1.2533·(the mean
       absolute deviation) when the MAD is 0) over the last ``long_window``
       values gives |z| of the point itself (spikes), of the mean of the last
       ``short_window`` points (short level shifts) and of the mean of the
       last ``mid_window`` points (slow drifts), and the fraction of the last
       ``outlier_window`` points more than ``outlier_z`` robust sigmas away
       (bursts of spikes, or a series that starts to oscillate, which no
       single point or mean shows). These need ``min_baseline`` values in
       the baseline: a z-score against a handful of points is noise, and as
       a calibration reference (step 2) it would mask real anomalies for a
       long time. Two seasonal features compare the point with an
       exponentially weighted profile keyed by the time of day
       (``seasonal_bins`` bins) and by the hour of the week (168 bins), both
       taken from ``timestamp_ns``, so irregular sampling is fine. Learning
       is weighted by time: one period of observations moves a bin by
       ``seasonal_alpha`` of its error, at any cadence. The residuals are
       scaled by a robust baseline of past residuals. A seasonal feature only
       counts once its profile has seen two periods, and only while the
       season explains the series: the residuals' mean absolute deviation
       must be at most ``seasonal_gate`` times the baseline's. On a series
       without that season the feature would be a noisier copy of the point
       feature, raising false alarms.
    2. **Calibration on a false-alarm rate** (:class:`TailCalibration`).
       Each feature is rated against an exponential tail fitted to the
       ``tail_k`` largest of its last ``history_window`` values: the ratio
       ``r`` is 1 for a value as extreme as the most extreme recent one, and
       under the fitted tail a ratio of ``r`` or more comes with probability
       ``(tail_k / history_window) · exp(-r · H_k)`` per point and feature.
       The score maps the largest ratio to ``r / (1 + r)``, so a score
       threshold is an expected false-alarm rate, the same on series of any
       scale, noise level or tail weight (see :func:`false_alarm_rate`).
       After an anomaly its own feature values widen the tail, so the same
       anomaly is not reported forever. A feature only takes part once its
       history holds ``min_history`` values. A |z| of exactly 0 (a value on
       the median, common where values repeat) is neither rated nor
       recorded.
    3. **Regime changes.** When at least ``shift_frac`` of the last
       ``shift_len`` points lie more than ``shift_z`` robust sigmas on the
       same side of the baseline, the series has changed level. Points a
       season expects do not count (a seasonal profile that has seen a full
       period predicts them at most ``SEEN_BEFORE`` times as far off as the
       baseline's median does: a daily peak is no new level), nor does
       anything in the first day, when nothing can tell a regime change from
       the daily cycle. The baseline is then rebuilt from those points only,
       the seasonal profiles move by the change of the median and their
       residual baselines start afresh. The new level is then normal instead of alarming for hours.
    4. **Onsets.** After a score reaches ``alarm_level``, the next
       ``suppress`` scores are multiplied by ``damp``: only the onset of an
       anomaly scores high (NAB-style scoring rewards early detection and
       charges for every repeated flag). A ratio of at least
       ``breakthrough`` times the alarm's own is never damped, so a large anomaly right after
       a small one is still reported.

    Windows count points and seasons come from timestamps, so any cadence
    works (NAB's 5-minute and hourly series, the agent's 1-minute buckets).
    The first ``warmup`` points, and any point whose features are not
    calibrated yet, score 0. NaN or infinite values score 0 and leave the
    state untouched. Not thread-safe: one scorer per series, fed in time
    order. Memory: about 350 KB per scorer with the default windows.
    """

    def __init__(
        self,
        *,
        long_window: int = 5000,
        short_window: int = 8,
        mid_window: int = 48,
        outlier_window: int = 60,
        outlier_z: float = 4.0,
        min_baseline: int = 60,
        history_window: int = 850,
        min_history: int = 200,
        tail_k: int = 8,
        warmup: int = 150,
        count_noise: bool = True,
        seasonal_bins: int = 96,
        seasonal_alpha: float = 0.3,
        seasonal_gate: float = 0.9,
        shift_z: float = 6.0,
        shift_len: int = 60,
        shift_frac: float = 0.8,
        alarm_level: float = 0.53,
        suppress: int = 100,
        damp: float = 0.5,
        breakthrough: float = 2.0,
    ) -> None:
        """Create a scorer; every argument is a global tunable.

        Raises:
            ValueError: a window, bin count, length or *min_history* is < 1, *tail_k*
                is not in [1, min(min_history, history_window)), *damp*,
                *alarm_level*, *shift_frac* or *seasonal_alpha* lies outside (0, 1],
                or *outlier_z*, *seasonal_gate*, *shift_z* or *breakthrough* is not
                positive.
        """
        for name, count in (
            ("long_window", long_window),
            ("short_window", short_window),
            ("mid_window", mid_window),
            ("outlier_window", outlier_window),
            ("min_baseline", min_baseline),
            ("history_window", history_window),
            ("min_history", min_history),
            ("seasonal_bins", seasonal_bins),
            ("shift_len", shift_len),
        ):
            if count < 1:
                msg = f"{name} must be >= 1, got {count}"
                raise ValueError(msg)
        for name, frac in (
            ("seasonal_alpha", seasonal_alpha),
            ("alarm_level", alarm_level),
            ("damp", damp),
            ("shift_frac", shift_frac),
        ):
            if not 0.0 < frac <= 1.0:
                msg = f"{name} must be in (0, 1], got {frac}"
                raise ValueError(msg)
        for name, positive in (
            ("outlier_z", outlier_z),
            ("seasonal_gate", seasonal_gate),
            ("shift_z", shift_z),
            ("breakthrough", breakthrough),
        ):
            if not positive > 0.0:
                msg = f"{name} must be > 0, got {positive}"
                raise ValueError(msg)
        self._baseline = RobustWindow(long_window)
        self._min_baseline = min_baseline
        self._short: deque[float] = deque(maxlen=short_window)
        self._mid: deque[float] = deque(maxlen=mid_window)
        self._outliers = RecentRate(outlier_window)
        self._outlier_z = outlier_z
        self._tail: deque[float] = deque(maxlen=shift_len)
        self._sides: deque[int] = deque(maxlen=shift_len)  # +1/-1 beyond shift_z, else 0
        self._side = 0  # side of the current point (recorded once the seasons have seen it)
        self._deviation = 0.0  # |current point - the baseline's median|
        self._above = 0  # how many of _sides are +1
        self._below = 0  # ... and -1
        self._shift_z = shift_z
        self._shift_need = math.ceil(shift_frac * shift_len)
        self._seasons = (
            _Season(SeasonalProfile(DAY_S, seasonal_bins, seasonal_alpha), long_window, DAY_S),
            _Season(SeasonalProfile(WEEK_S, WEEK_BINS, seasonal_alpha), long_window, WEEK_S),
        )
        self._seasonal_gate = seasonal_gate
        min_spans = [0.0] * FEATURES
        # one outlier more in the window is the smallest change of the fraction that counts
        min_spans[OUTLIER_RATE] = 1.0 / outlier_window
        self._calibration = TailCalibration(history_window, min_history, tail_k, tuple(min_spans))
        self._onsets = OnsetFilter(alarm_level, suppress, damp, breakthrough)
        self._warmup = warmup
        self._count_noise = count_noise
        # held-back points until the count decision; None once it is made
        self._pending: list[tuple[int, float]] | None = []
        self._counts = False
        self._first_ns: int | None = None
        self._last_ns: int | None = None
        self._seen = 0

    def false_alarm_rate(self, score: float) -> float:
        """Expected share of points per feature scoring *score* or more under the fitted
        tails (undamped scores; an idealisation: it assumes independent points)."""
        return self._calibration.false_alarm_rate(
            score / (1.0 - score) if score < 1.0 else math.inf
        )

    @property
    def counts(self) -> bool:
        """Whether the series was judged a count and is scored on the Anscombe scale."""
        return self._counts

    def update(self, timestamp_ns: int, value: float) -> float:
        """Feed the next point and return its anomaly score.

        Args:
            timestamp_ns: event time, Unix epoch nanoseconds (UTC); must not
                decrease from one call to the next.
            value: the observation.

        Returns:
            A score in [0, 1]; it depends only on this and earlier points.
            0 during warm-up and for NaN/infinite values.
        """
        if not math.isfinite(value):
            return 0.0
        x = float(value)
        pending = self._pending
        if pending is not None:
            pending.append((timestamp_ns, x))
            if len(pending) >= max(self._warmup, 1):
                self._counts = self._count_noise and is_count_like([v for _, v in pending])
                self._pending = None
                for t, v in pending:
                    self._ratio(t, anscombe(v) if self._counts else v)
            return 0.0
        ratio = self._ratio(timestamp_ns, anscombe(x) if self._counts else x)
        if self._seen <= self._warmup:
            return 0.0
        return self._onsets.score(ratio)

    def _ratio(self, timestamp_ns: int, x: float) -> float:
        """Learn *x* (already on the scoring scale); its calibration ratio."""
        if self._first_ns is None:
            self._first_ns = timestamp_ns
        features: list[float | None] = [None] * FEATURES
        base_spread = self._baseline_features(x, features)
        elapsed_ns = timestamp_ns - self._first_ns
        seen_before = self._seasonal_features(timestamp_ns, elapsed_ns, x, base_spread, features)
        # A level this hour has had before (a daily peak) is no evidence of a new regime,
        # and in the first day nothing can tell a regime change from the daily cycle.
        new_level = elapsed_ns >= DAY_S * NS_PER_S and not seen_before
        self._track_side(self._side if new_level else 0)
        self._learn_baseline(x)
        self._last_ns = timestamp_ns
        self._seen += 1
        return self._calibration.largest_ratio(features)

    def _baseline_features(self, x: float, features: list[float | None]) -> float | None:
        """Fill the baseline features of *x*; return the baseline's mean absolute
        deviation (None: too few values yet)."""
        self._short.append(x)
        self._mid.append(x)
        if len(self._baseline) < self._min_baseline:
            self._side = 0
            return None
        center, scale = self._baseline.center_scale(SCALE_FLOOR_REL)
        z = (x - center) / scale
        # A z-score of exactly 0 (on the median, common where values repeat)
        # says nothing and would drag the calibration's typical value down.
        features[POINT] = abs(z) or None
        features[SHORT_MEAN] = abs(sum(self._short) / len(self._short) - center) / scale or None
        features[MID_MEAN] = abs(sum(self._mid) / len(self._mid) - center) / scale or None
        features[OUTLIER_RATE] = self._outliers.push(abs(z) > self._outlier_z)
        self._side = 0 if abs(z) <= self._shift_z else (1 if z > 0 else -1)
        self._deviation = abs(x - center)
        return self._baseline.mean_abs_dev_from_median()

    def _seasonal_features(
        self,
        timestamp_ns: int,
        elapsed_ns: int,
        x: float,
        base_spread: float | None,
        features: list[float | None],
    ) -> bool:
        """Fill the seasonal residual features of *x* (*elapsed_ns* after the first
        point), then learn *x*. Whether a season that has seen a full period expects
        *x* (is at most ``SEEN_BEFORE`` times as far from it as the baseline's median)."""
        gap_ns = None if self._last_ns is None else timestamp_ns - self._last_ns
        seen_before = False
        for slot, season in zip((DAY_RESIDUAL, WEEK_RESIDUAL), self._seasons, strict=True):
            b = season.profile.bin_of(timestamp_ns)
            expected = season.profile.expect(b)
            if expected is not None:
                residual = x - expected
                if elapsed_ns >= season.period_ns and base_spread is not None:
                    seen_before = seen_before or abs(residual) <= SEEN_BEFORE * self._deviation
                if base_spread is not None and elapsed_ns >= season.mature_ns:
                    features[slot] = season.residual_z(
                        residual, base_spread, self._min_baseline, self._seasonal_gate
                    )
                season.residuals.push(residual)
            season.profile.learn(b, x, gap_ns)
        return seen_before

    def _track_side(self, side: int) -> None:
        """Record on which side beyond ``shift_z`` the point lies (0: within)."""
        sides = self._sides
        if len(sides) == sides.maxlen:
            old = sides[0]
            self._above -= old == 1
            self._below -= old == -1
        sides.append(side)
        self._above += side == 1
        self._below += side == -1

    def _learn_baseline(self, x: float) -> None:
        """Add *x* to the baseline; rebuild it after a sustained shift."""
        self._baseline.push(x)
        self._tail.append(x)
        if len(self._tail) < self._shift_need or max(self._above, self._below) < self._shift_need:
            return
        old_center = self._baseline.median()
        self._baseline.clear()
        for v in self._tail:
            self._baseline.push(v)
        delta = self._baseline.median() - old_center
        for season in self._seasons:
            season.profile.shift(delta)
            season.residuals.clear()
        self._sides.clear()
        self._above = self._below = 0


class _Season:
    """A seasonal profile, the window of its past residuals and its maturity."""

    __slots__ = ("mature_ns", "period_ns", "profile", "residuals")

    def __init__(self, profile: SeasonalProfile, window: int, period_s: int) -> None:
        self.profile = profile
        self.residuals = RobustWindow(window)
        self.period_ns = period_s * NS_PER_S
        self.mature_ns = 2 * self.period_ns  # two periods seen

    def residual_z(
        self, residual: float, base_spread: float, min_baseline: int, gate: float
    ) -> float | None:
        """Robust |z| of *residual* against past residuals; None while they are too few,
        or while the season does not explain the series.

        The season explains the series when the residuals' mean absolute deviation is at
        most *gate* times the baseline's (*base_spread*). Mean absolute deviations, unlike
        the MAD, see a season that moves fewer than half the points, like a daily peak.
        """
        residuals = self.residuals
        if len(residuals) < min_baseline:
            return None
        if residuals.mean_abs_dev_from_median() > gate * base_spread:
            return None
        center, scale = residuals.center_scale(SCALE_FLOOR_REL)
        return abs(residual - center) / scale or None
