"""Building blocks of :class:`analytics.scorer.AnomalyScorer`.

Fixed-size ring buffers, robust location/scale estimates and a time-of-day
seasonal profile. Everything here is O(1) or O(window) per call, uses no wall
clock and no randomness.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its sigma
NS_PER_S = 1_000_000_000


class RingBuffer:
    """The last ``capacity`` floats pushed, in no particular order.

    Order is irrelevant to the order statistics the scorer takes, so a write
    index that wraps around is enough.
    """

    __slots__ = ("_data", "_next", "_size")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            msg = f"capacity must be >= 1, got {capacity}"
            raise ValueError(msg)
        self._data: FloatArray = np.zeros(capacity, dtype=np.float64)
        self._next = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def push(self, value: float) -> None:
        """Store *value*, evicting the oldest one when full."""
        self._data[self._next] = value
        self._next = (self._next + 1) % self._data.shape[0]
        self._size = min(self._size + 1, self._data.shape[0])

    def clear(self) -> None:
        """Forget every stored value."""
        self._next = 0
        self._size = 0

    def values(self) -> FloatArray:
        """A read-only view of the stored values (unordered)."""
        view = self._data[: self._size]
        view.flags.writeable = False
        return view


def robust_center_scale(values: FloatArray, floor: float) -> tuple[float, float]:
    """Median and a robust sigma of *values* (non-empty).

    The sigma is ``1.4826 * MAD``; when more than half the values are equal
    the MAD is 0, so it falls back to the mean absolute deviation from the
    median, and never goes below *floor* (> 0), so dividing by it is safe.
    """
    center = float(np.median(values))
    dev = np.abs(values - center)
    scale = MAD_TO_SIGMA * float(np.median(dev))
    if scale <= floor:
        scale = max(1.2533 * float(np.mean(dev)), floor)
    return center, scale


class SeasonalProfile:
    """Exponentially weighted mean and absolute deviation per phase bin.

    A timestamp maps to bin ``floor((t mod period) / period * bins)``, so
    irregular sampling only changes how often a bin is refreshed. Each bin
    forgets with weight *alpha* per observation, so after a level shift the
    profile re-adapts in about ``1/alpha`` periods.
    """

    __slots__ = ("_alpha", "_bins", "_count", "_dev", "_mean", "_period_ns")

    def __init__(self, period_s: int, bins: int, alpha: float) -> None:
        self._period_ns = period_s * NS_PER_S
        self._bins = bins
        self._alpha = alpha
        self._mean: FloatArray = np.zeros(bins, dtype=np.float64)
        self._dev: FloatArray = np.zeros(bins, dtype=np.float64)
        self._count = np.zeros(bins, dtype=np.int64)

    def bin_of(self, timestamp_ns: int) -> int:
        """Phase bin of *timestamp_ns* (Unix epoch, UTC)."""
        return (timestamp_ns % self._period_ns) * self._bins // self._period_ns

    def expect(self, timestamp_ns: int) -> tuple[float, float, int]:
        """(mean, mean absolute deviation, observations) of the bin."""
        b = self.bin_of(timestamp_ns)
        return float(self._mean[b]), float(self._dev[b]), int(self._count[b])

    def learn(self, timestamp_ns: int, value: float) -> None:
        """Fold *value* into its bin; call after :meth:`expect`."""
        b = self.bin_of(timestamp_ns)
        if self._count[b] == 0:
            self._mean[b] = value
        else:
            err = value - self._mean[b]
            self._mean[b] += self._alpha * err
            self._dev[b] += self._alpha * (abs(err) - self._dev[b])
        self._count[b] += 1


def normal_tail(z: float) -> float:
    """Two-sided tail probability of a standard normal beyond ``|z|``."""
    return math.erfc(abs(z) / math.sqrt(2.0))


class TailEstimator:
    """Peaks-over-threshold estimate of how rare a new feature value is.

    Keeps the last ``capacity`` values of one non-negative feature. The top
    ``tail_fraction`` of them define a threshold ``u`` (their smallest value)
    and a mean excess ``sigma``; a new value ``f > u`` gets the exponential-tail
    probability ``k/n * exp(-(f - u) / sigma)``. :meth:`surprise` returns
    ``-ln`` of that probability (0 while fewer than ``min_count`` values).
    """

    __slots__ = ("_buf", "_min_count", "_tail_fraction")

    def __init__(self, capacity: int, tail_fraction: float, min_count: int) -> None:
        self._buf = RingBuffer(capacity)
        self._tail_fraction = tail_fraction
        self._min_count = min_count

    def __len__(self) -> int:
        return len(self._buf)

    def surprise(self, feature: float) -> float:
        """``-ln P(F >= feature)`` under the current history; >= 0."""
        n = len(self._buf)
        if n < self._min_count:
            return 0.0
        values = self._buf.values()
        k = max(2, int(self._tail_fraction * n))
        top = np.partition(values, n - k)[n - k :]
        u = float(np.min(top))
        if feature <= u:
            return 0.0
        sigma = float(np.mean(top)) - u
        scale = max(sigma, 1e-9 * (abs(u) + 1.0))
        return math.log(n / k) + (feature - u) / scale

    def push(self, feature: float) -> None:
        """Add *feature* to the history."""
        self._buf.push(feature)
