"""Building blocks of :class:`analytics.scorer.AnomalyScorer`.

Fixed-size ring buffers, robust location/scale estimates and a time-of-day
seasonal profile. Everything here is O(1) or O(window) per call, uses no wall
clock and no randomness.
"""

from __future__ import annotations

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
    """Exponentially weighted mean of a series per phase bin of a period.

    A timestamp maps to bin ``floor((t mod period) / period * bins)`` (Unix
    epoch, UTC), so irregular sampling only changes how often a bin is
    refreshed. Each observation moves its bin's mean by *alpha* of the error,
    so after a level shift the profile re-adapts within a few periods.
    """

    __slots__ = ("_alpha", "_bins", "_count", "_mean", "_period_ns")

    def __init__(self, period_s: int, bins: int, alpha: float) -> None:
        self._period_ns = period_s * NS_PER_S
        self._bins = bins
        self._alpha = alpha
        self._mean: FloatArray = np.zeros(bins, dtype=np.float64)
        self._count = np.zeros(bins, dtype=np.int64)

    def _bin(self, timestamp_ns: int) -> int:
        return (timestamp_ns % self._period_ns) * self._bins // self._period_ns

    def expect(self, timestamp_ns: int) -> float | None:
        """Expected value at *timestamp_ns*, or None if its bin is still empty."""
        b = self._bin(timestamp_ns)
        return float(self._mean[b]) if self._count[b] > 0 else None

    def learn(self, timestamp_ns: int, value: float) -> None:
        """Fold *value* into its bin (call after :meth:`expect`)."""
        b = self._bin(timestamp_ns)
        if self._count[b] == 0:
            self._mean[b] = value
        else:
            self._mean[b] += self._alpha * (value - self._mean[b])
        self._count[b] += 1
