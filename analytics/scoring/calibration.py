"""Turning feature values into one score, for :class:`strata.analytics.AnomalyScorer`.

:class:`TailCalibration` rates each feature against the upper tail of its own
recent values (an exponential tail fitted to the largest of them), which puts
features of any unit and series of any scale, noise level or tail weight on
one footing: a ratio is a false-alarm rate. :class:`OnsetFilter` then keeps
only the onset of an anomaly high, so one event raises one alarm.
"""

from __future__ import annotations

import math

from strata.analytics.scoring.parts import TailWindow

# Span floor relative to a feature's recent maximum: where the largest recent
# values are all equal (a feature that takes few distinct values) the fitted
# tail has no width, and a tiny excess would otherwise be a huge ratio.
SPAN_FLOOR_REL = 0.25
MAX_RATIO = 1e12  # keeps r / (1 + r) below 1 in floating point


class TailCalibration:
    """Per-feature ratio of a value's excess over its recent upper tail.

    For each feature the last ``history_window`` recorded values (``n`` of
    them) are kept sorted. The ``tail_k`` largest exceed the next one, ``u``,
    by ``beta`` on average; a peaks-over-threshold fit with an exponential
    tail then says that under the recent behaviour a value exceeds
    ``u + x`` with probability ``(k / n) * exp(-x / beta)``. A new value
    ``f`` has the ratio ``r = (f - u) / (beta * H_k)`` (``H_k`` the k-th
    harmonic number, the expected largest of k exponential excesses in units
    of ``beta``), so ``r = 1`` is "as extreme as the most extreme recent
    value" and, under the fitted tail, ``P(ratio >= r) = (k / n) * exp(-r * H_k)``:
    a threshold on the ratio is an expected false-alarm rate, whatever the
    feature's scale or tail weight (a heavy tail has a wide ``beta``, so its
    ordinary large values rate low). The span ``beta * H_k`` never goes below
    ``SPAN_FLOOR_REL`` times the recent maximum (where the largest values are
    all equal) nor below ``min_span``, the smallest excess that counts as a
    unit for that feature (it matters for a count whose recent values are all
    0). A value of None (feature not available) is neither rated nor
    recorded. A feature only takes part once ``min_history`` values are
    recorded.

    Args:
        history_window: recorded values per feature.
        min_history: values a feature needs before it is rated (> tail_k).
        tail_k: how many of the largest recent values the tail is fitted on.
        min_spans: one per feature, >= 0.
    """

    __slots__ = ("_harmonic", "_histories", "_k", "_min_history", "_min_spans")

    def __init__(
        self, history_window: int, min_history: int, tail_k: int, min_spans: tuple[float, ...]
    ) -> None:
        if not 1 <= tail_k < min(min_history, history_window):
            msg = f"tail_k must be >= 1 and below min_history and history_window, got {tail_k}"
            raise ValueError(msg)
        self._histories = tuple(TailWindow(history_window) for _ in min_spans)
        self._min_history = min_history
        self._min_spans = min_spans
        self._k = tail_k
        self._harmonic = sum(1.0 / i for i in range(1, tail_k + 1))

    def false_alarm_rate(self, ratio: float) -> float:
        """``P(ratio >= r)`` per point and feature under the fitted exponential tail."""
        return self._k / self._histories[0].capacity * math.exp(-ratio * self._harmonic)

    def largest_ratio(self, values: list[float | None]) -> float:
        """Rate *values* (one per feature), then record them; the largest ratio.

        Returns:
            The largest ratio, at least 0 and at most ``MAX_RATIO``; 0 while no
            feature has ``min_history`` values.
        """
        largest = 0.0
        k = self._k
        for value, history, min_span in zip(values, self._histories, self._min_spans, strict=True):
            if value is None:
                continue
            if len(history) >= self._min_history:
                s = history.sorted
                edge = s[-k - 1]
                if value > edge:  # below the tail the ratio is <= 0: skip the fit
                    beta = sum(s[-k:]) / k - edge
                    span = max(beta * self._harmonic, SPAN_FLOOR_REL * s[-1], min_span)
                    if span > 0.0:  # 0 only if the recent values are all 0 and min_span is 0
                        ratio = (value - edge) / span
                        if ratio > largest:
                            largest = ratio
            history.push(value)
        return min(largest, MAX_RATIO)


class OnsetFilter:
    """Keeps the onset of an anomaly high and damps what follows it.

    A ratio whose score reaches ``alarm_level`` starts a quiet period: the
    next ``suppress`` scores are multiplied by ``damp``, so a lasting or
    repeating anomaly raises one alarm (NAB-style scoring rewards the first
    detection of a window and charges every flag outside one; and the
    windowed features, a short mean for one, carry an anomaly for a while
    after it). A ratio of at least ``breakthrough`` times the alarm's own
    during the quiet period is not damped, and as an alarm it starts a new
    quiet period: a large anomaly is not hidden behind a small one just
    before it.

    Args:
        alarm_level: score that starts a quiet period.
        suppress: scores damped after an alarm.
        damp: factor for damped scores.
        breakthrough: how many times the alarm's ratio is never damped.
    """

    __slots__ = ("_alarm_level", "_alarm_ratio", "_breakthrough", "_damp", "_quiet", "_suppress")

    def __init__(self, alarm_level: float, suppress: int, damp: float, breakthrough: float) -> None:
        self._alarm_level = alarm_level
        self._suppress = suppress
        self._damp = damp
        self._breakthrough = breakthrough
        self._quiet = 0  # scores left to damp
        self._alarm_ratio = 0.0  # ratio of the alarm that started the quiet period

    def score(self, ratio: float) -> float:
        """Score in [0, 1] of a calibration ratio (>= 0), damped after an alarm."""
        score = ratio / (1.0 + ratio)
        if self._quiet > 0 and ratio < self._breakthrough * self._alarm_ratio:
            self._quiet -= 1
            return score * self._damp
        if score >= self._alarm_level:
            self._quiet = self._suppress
            self._alarm_ratio = ratio
        return score
