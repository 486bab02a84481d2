"""Rolling baselines on event time, and sustained-shift episodes against them.

A series is one value per bucket (NaN where there is no data). At each bucket the *current*
level is the median of the last ``current`` buckets and the *baseline* the median (and
MAD-based scale) of the ``baseline`` buckets before those. A shift starts when the current
level passes the rule's thresholds; the baseline then stays frozen at its pre-shift value
until the current level has been back inside the recovery band for ``recover`` buckets, so a
lasting regression is not absorbed into its own baseline.

Causal and deterministic: the verdict at bucket *i* depends only on buckets ``<= i``, so
analysing a day at once or minute by minute as it arrives gives the same episodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


@dataclass(frozen=True, slots=True)
class ShiftRule:
    """When a change of level counts as a shift.

    Args:
        direction: ``"up"`` or ``"down"``.
        ratio: the current level must be at least ``ratio`` x baseline (down: at most
            ``1 / ratio`` x baseline).
        z: and at least ``z`` robust standard deviations away from the baseline.
        min_delta: and at least this far away in absolute terms.
        floor: up: the current level must reach at least this; down: fall below it
            (None: no absolute condition).
        current: buckets in the current median.
        baseline: buckets in the baseline.
        recover: consecutive buckets inside the recovery band that end an episode.
        min_points: the fewest non-empty buckets the current window needs.
        min_weight: with weights (requests per bucket), the fewest the current window needs.
    """

    direction: str = "up"
    ratio: float = 1.5
    z: float = 4.0
    min_delta: float = 0.0
    floor: float | None = None
    current: int = 5
    baseline: int = 120
    recover: int = 5
    min_points: int = 3
    min_weight: float = 0.0


@dataclass(frozen=True, slots=True)
class Episode:
    """One sustained shift: bucket indexes of its start, detection and end (None: ongoing)."""

    start: int
    detect: int
    end: int | None
    baseline: float
    current: float


_BASELINE_STEP = 5  # the baseline is recomputed every few buckets (same result live/replay)


def row_nanmedians(rows: np.ndarray) -> np.ndarray:
    """``np.nanmedian(rows, axis=1)`` (NaN for an all-NaN row, without its warning) in one
    sort: numpy's own goes through masked arrays for short rows, which at a fleet's
    thousands of series was most of a hub's analysis pass."""
    ordered = np.sort(rows, axis=1)  # NaN sorts last
    present = np.sum(~np.isnan(rows), axis=1)
    at = np.arange(len(rows))
    low = ordered[at, np.maximum(present - 1, 0) // 2]
    high = ordered[at, present // 2]
    out: np.ndarray = (low + high) / 2.0
    out[present == 0] = np.nan
    return out


def rolling_median(values: np.ndarray, width: int, min_points: int) -> np.ndarray:
    """Median of ``values[i-width+1 .. i]`` at each i (NaN with fewer than *min_points*)."""
    n = len(values)
    out = np.full(n, np.nan)
    if n == 0 or width <= 0:
        return out
    padded = np.concatenate([np.full(width - 1, np.nan), values])
    windows = sliding_window_view(padded, width)
    counts = np.sum(~np.isnan(windows), axis=1)
    ok = counts >= min_points
    if ok.any():
        out[ok] = row_nanmedians(windows[ok])
    return out


def rolling_weighted_median(
    values: np.ndarray, weights: np.ndarray, width: int, min_points: int, min_weight: float
) -> np.ndarray:
    """Weighted median of the last *width* values at each i (NaN when the window has fewer
    than *min_points* values or less than *min_weight* total weight)."""
    n = len(values)
    out = np.full(n, np.nan)
    if n == 0 or width <= 0:
        return out
    pad_v = np.concatenate([np.full(width - 1, np.nan), values])
    pad_w = np.concatenate([np.zeros(width - 1), np.where(np.isnan(values), 0.0, weights)])
    v = sliding_window_view(pad_v, width)
    w = sliding_window_view(pad_w, width)
    order = np.argsort(np.where(np.isnan(v), np.inf, v), axis=1, kind="stable")
    sv = np.take_along_axis(v, order, axis=1)
    sw = np.take_along_axis(w, order, axis=1)
    cum = np.cumsum(sw, axis=1)
    total = cum[:, -1]
    ok = (np.sum(~np.isnan(v), axis=1) >= min_points) & (total >= max(min_weight, 1e-12))
    pick = np.argmax(cum >= total[:, None] / 2.0, axis=1)
    out[ok] = sv[np.arange(n), pick][ok]
    return out


def rolling_baseline(values: np.ndarray, rule: ShiftRule) -> tuple[np.ndarray, np.ndarray]:
    """Baseline median and robust scale at each bucket, from the buckets before the current
    window; recomputed at absolute bucket multiples of a small step and held in between."""
    n = len(values)
    med = np.full(n, np.nan)
    scale = np.full(n, np.nan)
    width = rule.baseline
    if n <= rule.current:
        return med, scale
    padded = np.concatenate([np.full(width, np.nan), values])
    windows = sliding_window_view(padded, width)  # windows[j] = values[j-width .. j-1]
    # the baseline at i ends just before the current window: values[.. i-current]
    anchors = np.arange(n) - rule.current + 1
    anchors = np.maximum(anchors - anchors % _BASELINE_STEP, 0)
    uniq = np.unique(anchors)
    wins = windows[uniq]
    counts = np.sum(~np.isnan(wins), axis=1)
    good = counts >= max(rule.min_points, width // 2)
    m = np.full(len(uniq), np.nan)
    s = np.full(len(uniq), np.nan)
    if good.any():
        m[good] = row_nanmedians(wins[good])
        s[good] = 1.4826 * row_nanmedians(np.abs(wins[good] - m[good, None]))
    pos = np.searchsorted(uniq, anchors)
    return m[pos], s[pos]


def _exceeds(cur: np.ndarray | float, base: np.ndarray | float, scale: np.ndarray | float,
             rule: ShiftRule, strength: float = 1.0) -> np.ndarray:
    """Elementwise: does *cur* pass the rule against (*base*, *scale*)? *strength* < 1 gives
    the looser recovery band."""
    cur_a, base_a, scale_a = np.asarray(cur), np.asarray(base), np.asarray(scale)
    ratio = 1.0 + (rule.ratio - 1.0) * strength
    z = rule.z * strength
    scale_a = np.maximum(scale_a, 1e-3 * np.abs(base_a) + 1e-12)
    with np.errstate(invalid="ignore"):
        if rule.direction == "up":
            ok = (cur_a >= base_a * ratio) & (cur_a - base_a >= z * scale_a) \
                & (cur_a - base_a >= rule.min_delta * strength)
            if rule.floor is not None:
                ok &= cur_a >= rule.floor * (1.0 if strength >= 1 else 0.9)
        else:
            ok = (cur_a * ratio <= base_a) & (base_a - cur_a >= z * scale_a) \
                & (base_a - cur_a >= rule.min_delta * strength)
            if rule.floor is not None:
                ok &= cur_a <= rule.floor * (1.0 if strength >= 1 else 1.1)
    return np.asarray(ok & ~np.isnan(cur_a) & ~np.isnan(base_a))


def find_shifts(
    values: np.ndarray, rule: ShiftRule, weights: np.ndarray | None = None
) -> list[Episode]:
    """Sustained shifts of *values* (one per bucket, NaN = no data) under *rule*.

    With *weights* (requests behind each bucket's value) the current level is the weighted
    median, so a bucket of one request counts for one request.
    """
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n == 0:
        return []
    min_points = min(rule.min_points, rule.current)
    if weights is None:
        cur = rolling_median(values, rule.current, min_points)
        settled = cur
    else:
        w = np.asarray(weights, dtype=float)
        cur = rolling_weighted_median(values, w, rule.current, min_points, rule.min_weight)
        # Recovery needs evidence, not volume: a quiet night with a few normal requests
        # shows the shift is over even when it is too thin to open one.
        settled = rolling_weighted_median(values, w, rule.current, min_points, 0.0)
    base, scale = rolling_baseline(values, rule)
    candidates = np.flatnonzero(_exceeds(cur, base, scale, rule))
    episodes: list[Episode] = []
    i_pos = 0
    while i_pos < len(candidates):
        i = int(candidates[i_pos])
        b, s = float(base[i]), float(scale[i])
        start = _change_point(values, i, b, s, rule)
        inside = _exceeds(settled[i + 1 :], b, s, rule, strength=0.5)
        has_data = ~np.isnan(settled[i + 1 :])
        out = has_data & ~inside
        end = _first_run(out, rule.recover)
        end_idx = None if end is None else i + 1 + end
        episodes.append(Episode(start, i, end_idx, b, float(cur[i])))
        if end_idx is None:
            break
        i_pos = int(np.searchsorted(candidates, end_idx + rule.recover, side="left"))
    return episodes


def _change_point(values: np.ndarray, i: int, base: float, scale: float, rule: ShiftRule) -> int:
    """Where the shift detected at *i* began: the earliest exceeding bucket of the current
    window from which at least three quarters of the buckets with data exceed (an early
    noisy bucket followed by normal ones is not the start)."""
    lo = max(0, i - rule.current + 1)
    window = values[lo : i + 1]
    hits = _exceeds(window, base, scale, rule)
    has_data = ~np.isnan(window)
    for j in np.flatnonzero(hits):
        if hits[j:].sum() >= 0.75 * has_data[j:].sum():
            return lo + int(j)
    return i


def _first_run(mask: np.ndarray, length: int) -> int | None:
    """Index where the first run of *length* consecutive True values in *mask* begins."""
    if len(mask) < length:
        return None
    run = np.convolve(mask.astype(np.int64), np.ones(length, dtype=np.int64), mode="valid")
    hits = np.flatnonzero(run == length)
    return int(hits[0]) if len(hits) else None
