"""Streaming anomaly scoring of one univariate series (see :class:`AnomalyScorer`)."""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from analytics.scorer_parts import FloatArray, RingBuffer, SeasonalProfile, robust_center_scale

DAY_S = 86_400
WEEK_S = 7 * DAY_S
NS_PER_DAY = DAY_S * 1_000_000_000
MIN_BASELINE = 10  # points needed before a robust median/MAD means anything
SCALE_FLOOR_REL = 1e-6  # scale floor relative to the largest |value| in the baseline
# Calibration span floor relative to a feature's recent maximum: where the median
# equals the maximum (a feature that takes few distinct values), a tiny excess
# would otherwise be an infinitely large ratio.
SPAN_FLOOR_REL = 0.25


class AnomalyScorer:
    """Online anomaly score in [0, 1] for one series, one point at a time.

    Algorithm (every step is O(window) at most, pure numpy, no randomness):

    1. **Features.** Each point is compared with the past only. A robust
       baseline (median and 1.4826·MAD, falling back to the mean absolute
       deviation when the MAD is 0) over the last ``long_window`` values gives
       three z-like features: the point itself (spikes), the mean of the last
       ``short_window`` points (short level shifts) and the mean of the last
       ``mid_window`` points (slow drifts). Two seasonal features compare the
       point with an exponentially weighted profile keyed by the time of day
       (``seasonal_bins`` bins) and by the hour of the week (168 bins), both
       computed from ``timestamp_ns``, so irregular sampling is fine; the
       residuals are scaled by a robust MAD of past residuals. A seasonal
       feature only counts once its profile has seen two periods.
    2. **Calibration.** Over its last ``history_window`` values, each
       feature has a median ``m`` and a maximum ``M``; its ratio is
       ``(f - m) / max(M - m, M / 4)`` (its excess over the typical value,
       relative to the largest excess recently seen; the floor keeps a tiny
       excess from counting as huge where ``m == M``). The score uses the largest ratio
       ``r`` over features and maps it to ``r / (1 + r)``. A score above 0.5
       therefore means "more extreme than anything recently seen", which is
       comparable across series of any scale or noise level, and after an
       anomaly its own feature values raise the reference, so the same
       anomaly is not reported forever. Measuring the excess over the median
       (rather than ``f / M``) sharpens the contrast: a value below the
       recent maximum scores lower and a new record higher, most so where
       the feature's typical value lies close to its maximum (on NAB: 71.36
       -> 71.96 standard, 54 -> 48 false-positive rows).
       A feature only takes part once its history holds ``min_history``
       values (200 by default: with 100, the reference maximum of a
       seasonal feature that has just switched on, after two periods, is
       taken over too few values and the switch-on itself raised false
       alarms on NAB).
    3. **Level-shift re-adaptation.** When ``shift_len`` consecutive points
       lie more than ``shift_z`` robust sigmas on the same side of the
       baseline, the baseline is rebuilt from those points only.
    4. **Spreading.** After a score reaches ``alarm_level``, the next
       ``suppress`` scores are multiplied by ``damp``: only the onset of an
       anomaly scores high (NAB-style scoring rewards early detection and
       charges for every repeated flag).

    The first ``warmup`` points, and any point whose feature histories hold
    fewer than ``min_history`` values, score 0. NaN or infinite values score
    0 and leave the state untouched. Not thread-safe: one scorer per series,
    fed in time order.
    """

    def __init__(
        self,
        *,
        long_window: int = 5000,
        short_window: int = 8,
        mid_window: int = 48,
        history_window: int = 1000,
        min_history: int = 200,
        warmup: int = 150,
        seasonal_bins: int = 96,
        seasonal_alpha: float = 0.2,
        shift_z: float = 6.0,
        shift_len: int = 60,
        alarm_level: float = 0.53,
        suppress: int = 100,
        damp: float = 0.5,
    ) -> None:
        """Create a scorer; every argument is a global tunable.

        Raises:
            ValueError: a window, bin count or length is < 1, or *damp*,
                *alarm_level* or *seasonal_alpha* lies outside (0, 1].
        """
        for name, count in (
            ("long_window", long_window),
            ("short_window", short_window),
            ("mid_window", mid_window),
            ("history_window", history_window),
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
        ):
            if not 0.0 < frac <= 1.0:
                msg = f"{name} must be in (0, 1], got {frac}"
                raise ValueError(msg)
        self._baseline = RingBuffer(long_window)
        self._short: deque[float] = deque(maxlen=short_window)
        self._mid: deque[float] = deque(maxlen=mid_window)
        self._tail: deque[float] = deque(maxlen=shift_len)
        self._profiles = (
            SeasonalProfile(DAY_S, seasonal_bins, seasonal_alpha),
            SeasonalProfile(WEEK_S, 168, seasonal_alpha),
        )
        self._residuals = (RingBuffer(long_window), RingBuffer(long_window))
        self._history = tuple(RingBuffer(history_window) for _ in range(5))
        self._min_history = min_history
        self._warmup = warmup
        self._shift_z = shift_z
        self._alarm_level = alarm_level
        self._suppress = suppress
        self._damp = damp
        self._first_ns: int | None = None
        self._seen = 0
        self._run = 0  # signed count of consecutive same-side outliers
        self._quiet = 0  # scores left to damp after an alarm

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
        if self._first_ns is None:
            self._first_ns = timestamp_ns
        features = self._features(timestamp_ns, x)
        ratio = self._calibrate(features)
        self._seen += 1
        if self._seen <= self._warmup:
            return 0.0
        return self._spread(ratio / (1.0 + ratio))

    def _features(self, timestamp_ns: int, x: float) -> list[float]:
        """Non-negative surprise features of *x*, then learn *x*."""
        feats = [0.0] * 5
        self._short.append(x)
        self._mid.append(x)
        if len(self._baseline) >= MIN_BASELINE:
            center, scale = _center_scale(self._baseline.values())
            feats[0] = abs(x - center) / scale
            feats[1] = abs(sum(self._short) / len(self._short) - center) / scale
            feats[2] = abs(sum(self._mid) / len(self._mid) - center) / scale
            self._track_shift((x - center) / scale)
        else:
            self._run = 0
        elapsed_ns = timestamp_ns - (self._first_ns or timestamp_ns)
        for i, (profile, residuals, period_s) in enumerate(
            zip(self._profiles, self._residuals, (DAY_S, WEEK_S), strict=True)
        ):
            expected = profile.expect(timestamp_ns)
            if expected is not None:
                resid = x - expected
                mature = elapsed_ns >= 2 * period_s * 1_000_000_000
                if mature and len(residuals) >= MIN_BASELINE:
                    r_center, r_scale = _center_scale(residuals.values())
                    feats[3 + i] = abs(resid - r_center) / r_scale
                residuals.push(resid)
            profile.learn(timestamp_ns, x)
        self._learn_baseline(x)
        return feats

    def _track_shift(self, z: float) -> None:
        """Count consecutive points beyond ``shift_z`` on one side."""
        if abs(z) <= self._shift_z:
            self._run = 0
        elif z > 0:
            self._run = self._run + 1 if self._run > 0 else 1
        else:
            self._run = self._run - 1 if self._run < 0 else -1

    def _learn_baseline(self, x: float) -> None:
        """Add *x* to the baseline; rebuild it after a sustained shift."""
        self._baseline.push(x)
        self._tail.append(x)
        if abs(self._run) >= len(self._tail) == self._tail.maxlen:
            self._baseline.clear()
            for v in self._tail:
                self._baseline.push(v)
            self._run = 0

    def _calibrate(self, features: list[float]) -> float:
        """Largest excess of a feature over its recent median, relative to the
        recent maximum's excess (>= 0; 1 means "equals the recent maximum")."""
        ratio = 0.0
        for feat, history in zip(features, self._history, strict=True):
            if feat <= 0.0:
                continue  # feature not available yet (or exactly typical)
            if len(history) >= self._min_history:
                past = history.values()  # all > 0, so the span below is > 0
                typical = float(np.median(past))
                largest = float(np.max(past))
                span = max(largest - typical, SPAN_FLOOR_REL * largest)
                ratio = max(ratio, (feat - typical) / span)
            history.push(feat)
        return min(ratio, 1e12)

    def _spread(self, score: float) -> float:
        """Damp the scores that follow an alarm so only the onset stands out."""
        if self._quiet > 0:
            self._quiet -= 1
            return score * self._damp
        if score >= self._alarm_level:
            self._quiet = self._suppress
        return score


def _center_scale(values: FloatArray) -> tuple[float, float]:
    """Robust center/scale with a floor relative to the data's magnitude."""
    floor = 1e-12 + SCALE_FLOOR_REL * float(np.max(np.abs(values)))
    return robust_center_scale(values, floor)
