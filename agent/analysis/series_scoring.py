"""Streaming anomaly scores for every collected series and every derived per-service signal.

:class:`SeriesScoring` keeps one :class:`strata.analytics.AnomalyScorer` per series across analyses
and feeds it each bucket exactly once, in event-time order, when the bucket has settled
(``SETTLE_BUCKETS`` later buckets have begun, so late data is in). Because the scorer is
deterministic and every series sees the same bucket sequence however the analyses were
spaced, replaying a day scores it as watching it live did. Scores at or above the threshold
are returned as :class:`Anomaly` rows (stored in the ``anomalies`` table by the analyzer).

Scored signals:

* per span group (service x operation, and span name outside the model layer): requests per
  bucket, error ratio, latency p50/p95, and for the model layer tokens and cost per request;
* every stored metric series except histogram parts: the bucket mean of a gauge, the
  increase of a cumulative counter (``gpu.energy.consumed``, ECC counts, unknown ``*_total``).

After a restart the scorers start cold: the first analysis primes them from the stored data
of its window (the analyzer's 36 h lookback; at most ``prime_ns``, 7 days, for a full
analysis) and records scores only for buckets the previous
process had not scored (the ``anomaly_scored_until_ns`` watermark in ``meta``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from strata.agent.store.seam import Store, report_reads
from strata.agent.store.window import SampleSeries, SpanSeries, Window
from strata.agent.units import DAY_NS, MINUTE_NS
from strata.analytics import AnomalyScorer
from strata.analytics.correlate import COUNTER_SIGNALS

logger = logging.getLogger(__name__)

SCORING_BUCKET_NS: Final = 5 * MINUTE_NS  # the cadence the scorer was validated on (NAB)
SETTLE_BUCKETS: Final = 1
PRIME_NS: Final = 7 * DAY_NS  # bounds a cold full analysis's cost
CUMULATIVE_SIGNALS: Final = COUNTER_SIGNALS | {
    "gpu.ecc.corrected.volatile", "gpu.ecc.uncorrected.volatile",
    "gpu.ecc.corrected.aggregate", "gpu.ecc.uncorrected.aggregate",
}


@dataclass(frozen=True, slots=True)
class ScoredSignal:
    """What one scored series measures; ``series`` is its stable identity."""

    series: str
    layer: str
    signal: str
    unit: str
    service: str | None = None
    host: str | None = None
    device: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One bucket of one series whose score reached the threshold."""

    signal: ScoredSignal
    time_ns: int  # bucket start
    value: float
    score: float


@dataclass(slots=True)
class _Tracked:
    scorer: AnomalyScorer
    last_max: float | None = None  # previous bucket's maximum of a cumulative counter


def span_signals(s: SpanSeries) -> Iterator[tuple[ScoredSignal, np.ndarray]]:
    """The derived per-request signals of one span group, per bucket (NaN: no data)."""
    labels = {"operation": s.operation}
    if s.layer != "model":
        labels["name"] = s.name
    count = s.count.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_request = np.where(count > 0, 1.0 / count, np.nan)
        per_token_span = np.where(s.token_count > 0, 1.0 / s.token_count, np.nan)
        signals = [
            ("requests", "{request}", count),
            ("error.ratio", "1", s.errors * per_request),
            ("latency.p50", "s", s.p50_s),
            ("latency.p95", "s", s.p95_s),
        ]
        if s.layer == "model":
            signals += [
                ("tokens.per_request", "{token}",
                 (s.input_tokens + s.output_tokens) * per_token_span),
                ("cost.per_request", "USD", s.cost_usd * per_request),
            ]
    for name, unit, values in signals:
        yield ScoredSignal(f"span|{s.key}|{name}", s.layer, name, unit, service=s.service,
                           labels=labels), values


def sample_signal(s: SampleSeries) -> tuple[ScoredSignal, bool]:
    """The scored identity of one metric series and whether it is a cumulative counter."""
    cumulative = s.canonical in CUMULATIVE_SIGNALS or s.canonical.endswith("_total")
    signal = ScoredSignal(f"metric|{s.key}", s.layer, s.canonical, s.unit, service=s.source,
                          host=s.host, device=s.device, labels=dict(s.labels))
    return signal, cumulative


class SeriesScoring:
    """One streaming scorer per series, advanced to the settled end of each analysis window.

    Args:
        threshold: scores at or above it are anomalies (``[anomaly] threshold``).
        max_series: series beyond this many are not scored (memory bound; logged).
        bucket_ns: scoring resolution (5 min: NAB's cadence; 5x cheaper than the detectors'
            minute, and steadier p95s on quiet services).
        prime_ns: how much stored event time the first analysis feeds a cold scorer.
        scorer: makes the scorer of a new series.

    Not thread-safe: the analyzer serialises analyses.
    """

    def __init__(
        self,
        *,
        threshold: float = 0.6,
        max_series: int = 1000,
        bucket_ns: int = SCORING_BUCKET_NS,
        prime_ns: int = PRIME_NS,
        scorer: Callable[[], AnomalyScorer] = AnomalyScorer,
    ) -> None:
        self.threshold = threshold
        self.max_series = max_series
        self.bucket_ns = bucket_ns
        self._prime_ns = prime_ns
        self._new_scorer = scorer
        self._tracked: dict[str, _Tracked] = {}
        self._fed_until_ns: int | None = None  # every bucket before it has been fed
        self._record_from_ns: int | None = None  # previous process's watermark
        self.skipped_series = 0  # in the last advance
        self._skipped_logged = 0

    @property
    def series_count(self) -> int:
        return len(self._tracked)

    def advance(self, store: Store, start_ns: int, end_ns: int) -> list[Anomaly]:
        """Feed the settled buckets in [*start_ns*, *end_ns*) not fed yet; return the new
        anomalies.

        The first call primes the scorers from *start_ns* (at most ``prime_ns`` of stored
        event time). Buckets before the stored watermark (scored by a previous process) are
        fed but not reported again.
        """
        b = self.bucket_ns
        cut = (end_ns // b - SETTLE_BUCKETS) * b
        if self._fed_until_ns is None:
            self._fed_until_ns = max(start_ns, cut - self._prime_ns) // b * b
            self._record_from_ns = report_reads(store).scored_until()
        start = max(self._fed_until_ns, start_ns // b * b)
        if cut <= start:
            return []
        todo = Window(store, start_ns=start, end_ns=cut, bucket_ns=b)
        self.skipped_series = 0
        anomalies = list(self._feed_spans(todo)) + list(self._feed_samples(todo))
        self._fed_until_ns = todo.end_ns
        if self.skipped_series != self._skipped_logged:
            self._skipped_logged = self.skipped_series
            logger.warning("anomaly scoring: %d series over [anomaly] max_series = %d are not "
                           "scored", self.skipped_series, self.max_series)
        return anomalies

    @property
    def watermark_ns(self) -> int | None:
        """Every bucket before this has been scored (stored in ``meta`` by the analyzer)."""
        return self._fed_until_ns

    def _feed_spans(self, window: Window) -> Iterator[Anomaly]:
        for s in sorted(window.span_series(), key=lambda x: x.key):
            for signal, values in span_signals(s):
                yield from self._feed(signal, window.times, values)

    def _feed_samples(self, window: Window) -> Iterator[Anomaly]:
        for s in sorted(window.all_sample_series(), key=lambda x: x.key):
            signal, cumulative = sample_signal(s)
            if not cumulative:
                yield from self._feed(signal, window.times, s.mean)
                continue
            tracked = self._tracker(signal.series)
            if tracked is None:
                continue
            increases = np.full(len(s.max), np.nan)
            for i in np.flatnonzero(np.isfinite(s.max)):
                now = float(s.max[i])
                last = tracked.last_max
                if last is not None and now >= last:  # a drop is a reset: increase unknown
                    increases[i] = now - last
                tracked.last_max = now
            yield from self._feed(signal, window.times, increases)

    def _tracker(self, series: str) -> _Tracked | None:
        tracked = self._tracked.get(series)
        if tracked is None:
            if len(self._tracked) >= self.max_series:
                self.skipped_series += 1
                return None
            tracked = self._tracked[series] = _Tracked(self._new_scorer())
        return tracked

    def _feed(self, signal: ScoredSignal, times: np.ndarray,
              values: np.ndarray) -> Iterator[Anomaly]:
        finite = np.flatnonzero(np.isfinite(values))
        if len(finite) == 0:
            return
        if signal.series not in self._tracked and signal.signal == "requests":
            active = np.flatnonzero(values[finite] > 0)  # a group starts with its traffic
            if len(active) == 0:
                return
            finite = finite[active[0]:]
        tracked = self._tracker(signal.series)
        if tracked is None:
            return
        update = tracked.scorer.update
        record_from = self._record_from_ns
        for i in finite.tolist():
            t = int(times[i])
            value = float(values[i])
            score = update(t, value)
            if score >= self.threshold and (record_from is None or t >= record_from):
                yield Anomaly(signal, t, value, score)


def anomaly_row(a: Anomaly, received_ns: int) -> list[Any]:
    """Column values of one ``anomalies`` row."""
    s = a.signal
    return [s.series, a.time_ns, s.layer, s.signal, s.unit, s.service, s.host, s.device,
            json.dumps(s.labels, sort_keys=True), a.value, a.score, received_ns]
