"""Turning feature values into one score, for :class:`strata.analytics.AnomalyScorer`.

:class:`RecordCalibration` compares each feature with its own recent values
(how far it exceeds the largest of them), which puts features of any unit and
series of any scale or noise level on one footing. :class:`OnsetFilter` then
keeps only the onset of an anomaly high, so one event raises one alarm.
"""

from __future__ import annotations

from strata.analytics.scoring.parts import MeanMaxWindow

# Calibration span floor relative to a feature's recent maximum: where nearly all
# recent values equal the maximum (a feature that takes few distinct values), a
# tiny excess would otherwise be a huge ratio.
SPAN_FLOOR_REL = 0.25
MAX_RATIO = 1e12  # keeps r / (1 + r) below 1 in floating point


class RecordCalibration:
    """Per-feature ratio of a value's excess to the largest recent excess.

    For each feature the last ``history_window`` recorded values give a mean
    ``m`` and a maximum ``M``; a new value ``f`` has the ratio
    ``(f - m) / max(M - m, M / 4, min_span)``: 1 means "as extreme as the
    most extreme recent value", above 1 is a new record. The ``M / 4`` floor
    keeps a tiny excess from counting as huge where nearly all recent values
    are equal; ``min_span`` is the smallest excess that counts as a unit for
    that feature (it matters for a count, whose recent values may all be 0).
    A value of None (feature not available) is neither rated nor recorded. A
    feature only takes part once ``min_history`` values are recorded, so its
    reference is not taken over a handful of values.

    Args:
        history_window: recorded values per feature.
        min_history: values a feature needs before it is rated.
        min_spans: one per feature, >= 0.
    """

    __slots__ = ("_histories", "_min_history", "_min_spans")

    def __init__(self, history_window: int, min_history: int, min_spans: tuple[float, ...]) -> None:
        self._histories = tuple(MeanMaxWindow(history_window) for _ in min_spans)
        self._min_history = min_history
        self._min_spans = min_spans

    def largest_ratio(self, values: list[float | None]) -> float:
        """Rate *values* (one per feature), then record them; the largest ratio.

        Returns:
            The largest ratio, at least 0 and at most ``MAX_RATIO``; 0 while no
            feature has ``min_history`` values.
        """
        largest = 0.0
        for value, history, min_span in zip(values, self._histories, self._min_spans, strict=True):
            if value is None:
                continue
            if len(history) >= self._min_history:
                typical = history.mean()
                top = history.maximum()
                span = max(top - typical, SPAN_FLOOR_REL * top, min_span)
                if span > 0.0:  # 0 only if all recorded values are 0 and min_span is 0
                    ratio = (value - typical) / span
                    if ratio > largest:
                        largest = ratio
            history.push(value)
        return min(largest, MAX_RATIO)


class OnsetFilter:
    """Keeps the onset of an anomaly high and damps what follows it.

    A ratio whose score reaches ``alarm_level`` starts a quiet period: the
    next ``suppress`` scores are multiplied by ``damp``, so a lasting or
    repeating anomaly raises one alarm (NAB-style scoring rewards the first
    detection of a window and charges every flag outside one). A ratio of at
    least ``breakthrough`` during the quiet period (the feature values of the
    alarm are in the calibration history by then, so this means "that much
    stronger than the alarm") is not damped, and as an alarm it starts a new
    quiet period: a large anomaly is not hidden behind a small one just
    before it.

    Args:
        alarm_level: score that starts a quiet period.
        suppress: scores damped after an alarm.
        damp: factor for damped scores.
        breakthrough: ratio that is never damped.
    """

    __slots__ = ("_alarm_level", "_breakthrough", "_damp", "_quiet", "_suppress")

    def __init__(self, alarm_level: float, suppress: int, damp: float, breakthrough: float) -> None:
        self._alarm_level = alarm_level
        self._suppress = suppress
        self._damp = damp
        self._breakthrough = breakthrough
        self._quiet = 0  # scores left to damp

    def score(self, ratio: float) -> float:
        """Score in [0, 1] of a calibration ratio (>= 0), damped after an alarm."""
        score = ratio / (1.0 + ratio)
        if self._quiet > 0 and ratio < self._breakthrough:
            self._quiet -= 1
            return score * self._damp
        if score >= self._alarm_level:
            self._quiet = self._suppress
        return score
