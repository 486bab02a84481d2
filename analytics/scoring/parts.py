"""Building blocks of :class:`strata.analytics.scoring.scorer.AnomalyScorer`.

A sliding window kept sorted (median, MAD and mean absolute deviation without
sorting or scanning its thousands of values at every point), a sliding mean
and maximum, the fraction of recent flags set and a seasonal profile.
Everything is plain Python floats: per point the scorer does scalar work,
where a numpy call (about 1 µs each) costs more than the arithmetic. No wall
clock, no randomness.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections import deque

from strata.agent.units import NS_PER_S

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its sigma
MEAN_AD_TO_SIGMA = 1.2533  # mean absolute deviation of a normal distribution times this


class RobustWindow:
    """The last ``capacity`` values, kept sorted, with a robust center and scale.

    Values live twice: in a ring (arrival order, to know which value leaves)
    and in a sorted array (for order statistics). Both are ``array('d')``,
    8 bytes a value. A push is a binary search plus one memmove of the sorted
    array, around a microsecond for thousands of values. The window also
    tracks the sum of the lower half of the sorted values and the total, so
    the mean absolute deviation from the median is O(1), and it remembers
    where the median absolute deviation split the values last time, so
    finding it again is a short walk.
    """

    __slots__ = (
        "_capacity",
        "_half",
        "_low_sum",
        "_mad_split",
        "_next",
        "_pushes",
        "_ring",
        "_sorted",
        "_total",
    )

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            msg = f"capacity must be >= 1, got {capacity}"
            raise ValueError(msg)
        self._capacity = capacity
        self._ring = array("d")
        self._next = 0  # ring slot the next value overwrites, once the ring is full
        self._sorted = array("d")
        self._half = 0  # len // 2 values form the lower half
        self._low_sum = 0.0  # sum(sorted[:half])
        self._total = 0.0
        self._mad_split = 0
        self._pushes = 0

    def __len__(self) -> int:
        return len(self._sorted)

    def push(self, value: float) -> None:
        """Store *value*, evicting the oldest one when full."""
        s = self._sorted
        half = self._half
        ring = self._ring
        if len(ring) < self._capacity:
            ring.append(value)
        else:
            slot = self._next
            old = ring[slot]
            ring[slot] = value
            self._next = slot + 1 if slot + 1 < self._capacity else 0
            i = bisect_left(s, old)
            del s[i]
            self._total -= old
            if i < half:  # the lower half lost *old* and gains its next value up
                self._low_sum += s[half - 1] - old
        i = bisect_right(s, value)
        s.insert(i, value)
        self._total += value
        if i < half:  # *value* enters the lower half and pushes its top value out
            self._low_sum += value - s[half]
        target = len(s) // 2
        while half < target:
            self._low_sum += s[half]
            half += 1
        while half > target:
            half -= 1
            self._low_sum -= s[half]
        self._half = half
        self._pushes += 1
        if self._pushes == self._capacity:
            # Adding and subtracting accumulates rounding error; start afresh.
            self._pushes = 0
            self._low_sum = math.fsum(s[:half])
            self._total = math.fsum(s)

    def clear(self) -> None:
        """Forget every stored value."""
        self._ring = array("d")
        self._next = 0
        self._sorted = array("d")
        self._half = 0
        self._low_sum = 0.0
        self._total = 0.0
        self._mad_split = 0
        self._pushes = 0

    def values(self) -> list[float]:
        """The stored values, oldest first."""
        ring = self._ring
        return list(ring[self._next :]) + list(ring[: self._next])

    def median(self) -> float:
        """Median of the stored values (mean of the middle two for an even count)."""
        s = self._sorted
        half = self._half
        return s[half] if len(s) % 2 else 0.5 * (s[half - 1] + s[half])

    def mean_abs_dev_from_median(self) -> float:
        """Mean of ``|x - median|`` over the stored values (non-empty)."""
        n = len(self._sorted)
        half = self._half
        center = self.median()
        # the lower half lies at or below the median, the upper half at or above
        high_sum = self._total - self._low_sum
        dev_sum = (high_sum - center * (n - half)) + (center * half - self._low_sum)
        return max(dev_sum, 0.0) / n

    def mad(self, center: float) -> float:
        """Median of ``|x - center|`` over the stored values (non-empty).

        The deviations below *center* and those at or above it form two
        sorted sequences; the median is where a merge of both would reach
        the middle. That split moves little from one point to the next, so
        it is found by walking from the previous one.
        """
        s = self._sorted
        n = len(s)
        m = bisect_left(s, center)  # s[:m] < center <= s[m:]
        n_right = n - m
        # left deviation i: center - s[m - 1 - i]; right deviation j: s[m + j] - center
        take = (n - 1) // 2 + 1  # deviations up to and including the (lower) middle one
        i = min(max(self._mad_split, take - n_right, 0), take, m)
        while True:  # i from the left, take - i from the right
            j = take - i
            if i > 0 and j < n_right and center - s[m - i] > s[m + j] - center:
                i -= 1
            elif j > 0 and i < m and s[m + j - 1] - center > center - s[m - 1 - i]:
                i += 1
            else:
                break
        self._mad_split = i
        j = take - i
        middle = max(
            center - s[m - i] if i > 0 else -math.inf,
            s[m + j - 1] - center if j > 0 else -math.inf,
        )
        if n % 2:
            return middle
        above = min(
            center - s[m - 1 - i] if i < m else math.inf,
            s[m + j] - center if j < n_right else math.inf,
        )
        return 0.5 * (middle + above)

    def center_scale(self, scale_floor_rel: float) -> tuple[float, float]:
        """Median and a robust sigma of the stored values (non-empty).

        The sigma is ``1.4826 * MAD``; when more than half the values are
        equal the MAD is 0, so it falls back to the mean absolute deviation
        from the median, and never goes below ``1e-12 + scale_floor_rel``
        times the largest ``|value|``, so dividing by it is safe.
        """
        s = self._sorted
        half = self._half
        center = s[half] if len(s) % 2 else 0.5 * (s[half - 1] + s[half])
        floor = 1e-12 + scale_floor_rel * max(-s[0], s[-1])
        scale = MAD_TO_SIGMA * self.mad(center)
        if scale <= floor:
            scale = max(MEAN_AD_TO_SIGMA * self.mean_abs_dev_from_median(), floor)
        return center, scale


class TailWindow:
    """The last ``capacity`` values, kept sorted, for questions about their upper tail.

    A ring (arrival order) and a sorted ``array('d')``; a push is a binary
    search and one memmove, like :class:`RobustWindow` without its running
    sums.
    """

    __slots__ = ("_capacity", "_next", "_ring", "sorted")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            msg = f"capacity must be >= 1, got {capacity}"
            raise ValueError(msg)
        self._capacity = capacity
        self._ring = array("d")
        self._next = 0
        self.sorted = array("d")  # read-only for callers

    def __len__(self) -> int:
        return len(self.sorted)

    @property
    def capacity(self) -> int:
        """How many values the window keeps."""
        return self._capacity

    def push(self, value: float) -> None:
        """Store *value*, evicting the oldest one when full."""
        ring = self._ring
        s = self.sorted
        if len(ring) < self._capacity:
            ring.append(value)
        else:
            slot = self._next
            del s[bisect_left(s, ring[slot])]
            ring[slot] = value
            self._next = slot + 1 if slot + 1 < self._capacity else 0
        s.insert(bisect_right(s, value), value)


class SeasonalProfile:
    """Exponentially weighted mean of a series per phase bin of a period.

    A timestamp maps to bin ``floor((t mod period) / period * bins)`` (Unix
    epoch, UTC), so irregular sampling only changes how often a bin is
    refreshed. Learning is weighted by time, not by count: the observations
    one period brings to a bin move its mean by *alpha* of the error in all,
    whether the bin holds one point a period (hourly data) or fifteen
    (1-minute data). Each observation stands for the time since the previous
    one, up to a bin's width, so its weight is ``1 - (1 - alpha) ** (dt / width)``.
    After a level shift the profile re-adapts within a few periods.
    """

    __slots__ = (
        "_bin_ns",
        "_bins",
        "_keep",
        "_last_gap_ns",
        "_last_weight",
        "_mean",
        "_period_ns",
        "_seen",
    )

    def __init__(self, period_s: int, bins: int, alpha: float) -> None:
        self._period_ns = period_s * NS_PER_S
        self._bins = bins
        self._bin_ns = self._period_ns / bins
        self._keep = 1.0 - alpha  # share of the old mean one full period leaves
        self._mean = [0.0] * bins
        self._seen = [False] * bins
        self._last_gap_ns: int | None = None  # regular sampling repeats the same gap:
        self._last_weight = 1.0 - self._keep  # its weight is computed once

    def bin_of(self, timestamp_ns: int) -> int:
        """Index of the phase bin *timestamp_ns* falls in."""
        return (timestamp_ns % self._period_ns) * self._bins // self._period_ns

    def expect(self, b: int) -> float | None:
        """Expected value in bin *b*, or None if the bin is still empty."""
        return self._mean[b] if self._seen[b] else None

    def learn(self, b: int, value: float, gap_ns: int | None) -> None:
        """Fold *value* into bin *b* (call after :meth:`expect`).

        Args:
            b: the bin, from :meth:`bin_of`.
            value: the observation.
            gap_ns: time since the series' previous observation (None for the
                first one: it counts as a full bin width).
        """
        if not self._seen[b]:
            self._mean[b] = value
            self._seen[b] = True
            return
        if gap_ns != self._last_gap_ns:
            width = 1.0 if gap_ns is None else min(max(gap_ns, 0) / self._bin_ns, 1.0)
            self._last_gap_ns = gap_ns
            self._last_weight = 1.0 - self._keep**width
        self._mean[b] += self._last_weight * (value - self._mean[b])

    def shift(self, delta: float) -> None:
        """Move every learned bin by *delta* (the series changed level)."""
        self._mean = [m + delta for m in self._mean]


class RecentRate:
    """Fraction of the last ``window`` flags that were set (None until it is full)."""

    __slots__ = ("_count", "_flags")

    def __init__(self, window: int) -> None:
        self._flags: deque[bool] = deque(maxlen=window)
        self._count = 0

    def push(self, flag: bool) -> float | None:
        """Record *flag*; return the fraction set over the full window, else None."""
        flags = self._flags
        if len(flags) == flags.maxlen and flags[0]:
            self._count -= 1
        flags.append(flag)
        self._count += flag
        return self._count / len(flags) if len(flags) == flags.maxlen else None
