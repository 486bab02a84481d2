"""Streaming anomaly scoring of one univariate series."""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from analytics.scorer_parts import (
    RingBuffer,
    SeasonalProfile,
    TailEstimator,
    robust_center_scale,
)

DAY_S = 86_400


class AnomalyScorer:
    """Scores each new point of a series in [0, 1]; v1 (draft)."""

    def __init__(
        self,
        *,
        long_window: int = 1500,
        short_window: int = 6,
        history_window: int = 1000,
        warmup: int = 150,
        seasonal_bins: int = 48,
        seasonal_alpha: float = 0.1,
        seasonal_min_periods: float = 2.0,
        power: float = 1.0,
        tail_fraction: float = 0.05,
        min_history: int = 100,
        scale_div: float = 10.0,
        mid_window: int = 48,
        suppress: int = 0,
        alarm_level: float = 0.5,
        damp: float = 0.5,
        shift_z: float = 0.0,
        shift_len: int = 36,
    ) -> None:
        self._values = RingBuffer(long_window)
        self._recent: deque[float] = deque(maxlen=short_window)
        self._hist = [
            TailEstimator(history_window, tail_fraction, min_history) for _ in range(4)
        ]
        self._warmup = warmup
        self._season = SeasonalProfile(DAY_S, seasonal_bins, seasonal_alpha)
        self._season_resid = RingBuffer(long_window)
        self._season_min_ns = int(seasonal_min_periods * DAY_S * 1e9)
        self._first_ns: int | None = None
        self._n = 0
        self._power = power
        self._scale_div = scale_div
        self._min_history = min_history
        self._mid: deque[float] = deque(maxlen=mid_window)
        self._suppress = suppress
        self._alarm = alarm_level
        self._damp = damp
        self._quiet = 0
        self._shift_z = shift_z
        self._tail: deque[float] = deque(maxlen=shift_len)
        self._run = 0

    def update(self, timestamp_ns: int, value: float) -> float:
        if math.isnan(value) or math.isinf(value):
            return 0.0
        if self._first_ns is None:
            self._first_ns = timestamp_ns
        x = float(value)
        feats = [0.0, 0.0, 0.0, 0.0]
        self._recent.append(x)
        self._mid.append(x)
        if len(self._values) >= 10:
            vals = self._values.values()
            floor = 1e-9 + 1e-6 * float(np.max(np.abs(vals)))
            center, scale = robust_center_scale(vals, floor)
            feats[0] = abs(x - center) / scale
            feats[1] = abs(sum(self._recent) / len(self._recent) - center) / scale
            feats[3] = abs(sum(self._mid) / len(self._mid) - center) / scale
            side = (x - center) / scale
            if self._shift_z > 0 and abs(side) > self._shift_z:
                self._run = self._run + 1 if side * self._run >= 0 else -1
                self._run = self._run if side > 0 else -abs(self._run)
            else:
                self._run = 0
        m, d, c = self._season.expect(timestamp_ns)
        if c > 0:
            r = x - m
            if (
                timestamp_ns - self._first_ns >= self._season_min_ns
                and len(self._season_resid) >= 10
            ):
                rv = self._season_resid.values()
                floor = 1e-9 + 1e-6 * float(np.max(np.abs(rv)))
                rc, rs = robust_center_scale(rv, floor)
                feats[2] = abs(r - rc) / rs
            self._season_resid.push(r)
        self._season.learn(timestamp_ns, x)
        self._values.push(x)
        self._tail.append(x)
        if self._tail.maxlen is not None and abs(self._run) >= self._tail.maxlen:
            self._values.clear()
            for v in self._tail:
                self._values.push(v)
            self._run = 0
        self._n += 1
        ratio = 0.0
        for f, h in zip(feats, self._hist, strict=True):
            if f > 0:
                if len(h) >= self._min_history:
                    ref = float(np.max(h._buf.values()))
                    ratio = max(ratio, f / (ref + 1e-12))
                h.push(f)
        if self._n <= self._warmup:
            return 0.0
        rp = ratio**self._power
        score = rp / (1.0 + rp)
        if self._quiet > 0:
            self._quiet -= 1
            return score * self._damp
        if score >= self._alarm:
            self._quiet = self._suppress
        return score
