"""Analyzer: detection over stored telemetry -> incidents persisted with their timelines.

``analyze(now_ns)`` reads one event-time window ending at *now_ns* (default: the latest
event time stored), runs every detector, groups findings into incidents with root cause and
suggestion, and reconciles them with the stored incidents in one transaction: new ones are
inserted, changed ones updated, recovered ones auto-resolved. Running it twice over the same
data changes nothing the second time (idempotent), and because detection is causal on event
time, analysing a replayed day gives the incidents that watching it live gave.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from strata.agent.analysis.series_scoring import Anomaly, SeriesScoring, anomaly_row
from strata.agent.model import Finding, Incident, IncidentEvent
from strata.agent.store.seam import IncidentBook, Store, incident_book
from strata.agent.store.window import BUCKET_NS, PriceFn, Window, event_time_bounds
from strata.agent.units import HOUR_NS
from strata.analytics.base import Detector
from strata.analytics.changes import merge_changes
from strata.analytics.detectors import DEFAULT_DETECTORS
from strata.analytics.incidents import GROUP_GAP_NS, IncidentDraft, build_incidents

logger = logging.getLogger(__name__)

_WARMUP_NS = 2 * HOUR_NS + 10 * BUCKET_NS  # a baseline must exist before a shift is seen


@dataclass(frozen=True, slots=True)
class AnalysisReport:
    """What one analysis did. ``new`` includes incidents first seen already resolved."""

    window_start_ns: int | None
    window_end_ns: int | None
    findings: int
    new: tuple[Incident, ...] = ()
    updated: tuple[Incident, ...] = ()
    resolved: tuple[Incident, ...] = ()
    elapsed_s: float = 0.0
    anomalies: int = 0  # new scored anomalies (``anomalies`` table)


class Analyzer:
    """Runs detection and keeps the incidents table in step with the data.

    Args:
        store: the agent's DuckDB store or another engine's (``seam.AnalysisStore``): reads
            through ``Window``, incident state through ``seam.IncidentBook``.
        bucket_ns: detection resolution.
        lookback_ns: how much event time before *now* one analysis reads (None: all).
        price: prices spans that have no stored cost (``(provider, model) -> rates``).
        detectors: the detectors to run (``DEFAULT_DETECTORS``).
        tolerance_buckets: starts this many buckets apart count as simultaneous for root cause.
        group_gap_ns: findings starting further apart are never grouped.
        scoring: streaming anomaly scores of every series (None: not scored).

    Thread-safe: analyses are serialised.
    """

    def __init__(
        self,
        store: Store,
        *,
        bucket_ns: int = BUCKET_NS,
        lookback_ns: int | None = 36 * HOUR_NS,
        price: PriceFn | None = None,
        detectors: Sequence[Detector] = DEFAULT_DETECTORS,
        tolerance_buckets: int = 3,
        group_gap_ns: int = GROUP_GAP_NS,
        scoring: SeriesScoring | None = None,
    ) -> None:
        self._store = store
        self.bucket_ns = bucket_ns
        self.lookback_ns = lookback_ns
        self._price = price
        self._detectors = tuple(detectors)
        self._tolerance_ns = tolerance_buckets * bucket_ns
        self._gap_ns = group_gap_ns
        self.scoring = scoring
        self._lock = threading.Lock()

    def window(self, now_ns: int | None = None, *, full: bool = False) -> Window | None:
        """The window one analysis at *now_ns* reads (all stored data when *full*)."""
        bounds = event_time_bounds(self._store)
        if bounds is None:
            return None
        earliest, latest = bounds
        end = (latest + 1) if now_ns is None else now_ns
        # the bucket holding *end* may still be filling; analyse complete buckets only
        lookback = None if full else self.lookback_ns
        start = earliest if lookback is None else max(earliest, end - lookback)
        return Window(self._store, start_ns=start, end_ns=end, bucket_ns=self.bucket_ns,
                      price=self._price)

    def findings(self, window: Window) -> list[Finding]:
        """Every detector's findings over *window*, in a deterministic order."""
        found: list[Finding] = []
        for detector in self._detectors:
            found.extend(detector.detect(window))
        return sorted(found, key=lambda f: (f.started_at_ns, f.kind, f.key, f.signal))

    def drafts(self, window: Window) -> tuple[list[Finding], list[IncidentDraft]]:
        """Findings and the incidents they make, without touching the store."""
        found = self.findings(window)
        drafts = build_incidents(
            found, dependencies=window.dependencies(),
            changes=merge_changes(window.deployments(), window.bucket_ns),
            tolerance_ns=self._tolerance_ns, gap_ns=self._gap_ns,
        )
        return found, drafts

    def analyze(self, now_ns: int | None = None, *, full: bool = False) -> AnalysisReport:
        """Detect over the window ending at *now_ns* and reconcile the stored incidents.

        Args:
            now_ns: event time to analyse up to (default: the latest stored).
            full: read everything stored, not just the lookback (``POST /api/v1/analyze``).

        Returns:
            The report: new, updated and auto-resolved incidents (for alerting).
        """
        started = time.perf_counter()
        with self._lock:
            window = self.window(now_ns, full=full)
            if window is None or window.n_buckets == 0:
                return AnalysisReport(None, None, 0)
            found, drafts = self.drafts(window)
            anomalies = [] if self.scoring is None else self.scoring.advance(
                self._store, window.start_ns, window.end_ns)
            with incident_book(self._store) as book:
                new, updated, resolved = self._reconcile(book, drafts, window)
                self._store_anomalies(book, anomalies)
        report = AnalysisReport(window.start_ns, window.end_ns, len(found), tuple(new),
                                tuple(updated), tuple(resolved), time.perf_counter() - started,
                                len(anomalies))
        logger.info("analysed %d buckets: %d findings, %d new, %d updated, %d resolved, "
                    "%d anomalies", window.n_buckets, len(found), len(new), len(updated),
                    len(resolved), len(anomalies))
        return report

    def _store_anomalies(self, book: IncidentBook, anomalies: list[Anomaly]) -> None:
        """Insert new anomaly rows and move the scoring watermark forward (never back)."""
        if self.scoring is None or self.scoring.watermark_ns is None:
            return
        now = time.time_ns()
        book.insert_anomalies([anomaly_row(a, now) for a in anomalies])
        book.advance_scored_until(self.scoring.watermark_ns)

    def _reconcile(
        self, book: IncidentBook, drafts: list[IncidentDraft], window: Window
    ) -> tuple[list[Incident], list[Incident], list[Incident]]:
        new: list[Incident] = []
        updated: list[Incident] = []
        resolved: list[Incident] = []
        seen = set()
        for draft in drafts:
            inc = draft.incident
            seen.add(inc.id)
            old = book.get_incident(inc.id, with_events=False)
            if old is None:
                book.insert_incident(inc, window.end_ns)
                book.add_events(inc.id, inc.events)
                new.append(inc)
                continue
            merged, events = _merge(book, old, inc)
            if merged != replace(old, events=merged.events):
                book.update_incident(merged, window.end_ns)
                (resolved if merged.status == "resolved" != old.status else updated).append(
                    merged)
            book.add_events(inc.id, events)
        # Open incidents no longer produced (merged into another, or data superseded),
        # judged only where the window had a baseline to see them.
        for old in book.open_incidents_between(window.start_ns + _WARMUP_NS, window.end_ns):
            if old.id in seen:
                continue
            gone = replace(old, status="resolved", resolved_at_ns=window.end_ns)
            book.update_incident(gone, window.end_ns)
            book.add_events(old.id, [IncidentEvent(
                window.end_ns, "resolved",
                "superseded: merged into another incident or no longer in the data")])
            resolved.append(gone)
        return new, updated, resolved


def _merge(
    book: IncidentBook, old: Incident, draft: Incident
) -> tuple[Incident, list[IncidentEvent]]:
    """The stored incident updated from *draft*, keeping operator state; events to add."""
    events = [e for e in draft.events if e.event != "resolved"]
    status, resolved_at = old.status, old.resolved_at_ns
    if draft.status == "resolved":
        if old.status != "resolved":
            status, resolved_at = "resolved", draft.resolved_at_ns
        if not (old.status == "resolved" and book.manually_resolved(old.id)):
            events = list(draft.events)
            resolved_at = resolved_at if old.status == "resolved" else draft.resolved_at_ns
    elif old.status == "resolved" and not book.manually_resolved(old.id):
        status, resolved_at = "open", None
        events.append(IncidentEvent(draft.events[-1].time_unix_nano, "reopened",
                                    "anomalies active again"))
    merged = replace(draft, status=status, resolved_at_ns=resolved_at, events=())
    return merged, events
