"""The Detector protocol, and the helper that turns shift episodes into Findings.

A detector is one verb: ``detect(window) -> Iterable[Finding]``. The window is a read-only,
event-time view (``strata.agent.store.window.Window``); detectors never read the clock or the
store.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

import numpy as np
from strata.agent.model import Finding, Layer
from strata.analytics.baseline import ShiftRule, find_shifts

if TYPE_CHECKING:
    from strata.agent.store.window import Window

SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}


class Detector(Protocol):
    """Finds regressions of one kind in a window of telemetry."""

    @property
    def kind(self) -> str:
        """The kind of finding it looks for (read-only: a class attribute or a field)."""
        ...

    def detect(self, window: Window) -> Iterable[Finding]:
        """Findings for every sustained regression of this kind in *window*.

        Pure: reads only *window*; the same window yields the same findings. Event time
        only: ``started_at_ns``/``detected_at_ns`` are bucket times from the data.
        """
        ...


def shift_findings(
    window: Window,
    values: np.ndarray,
    rule: ShiftRule,
    *,
    kind: str,
    layer: Layer,
    signal: str,
    unit: str,
    key: str,
    what: str,
    service: str | None = None,
    host: str | None = None,
    critical_ratio: float | None = None,
    report: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    onset: np.ndarray | None = None,
) -> list[Finding]:
    """One Finding per sustained shift of *values* under *rule*.

    Args:
        window: supplies bucket times.
        values: one value per bucket (NaN: no data).
        rule: the shift rule.
        kind, layer, signal, unit, key, service, host: copied into each finding.
        what: the entity in words, for the summary ("chat gpt-4o on rag-api").
        critical_ratio: current/baseline at or beyond which the finding is critical.
        report: values to report as baseline/current instead of *values* (same shape).
        weights: requests per bucket, for a weighted current level (``find_shifts``).
        onset: per-bucket flags of the raw anomaly; when given, the episode starts at the
            first flagged bucket of those that led to detection (for smoothed signals).
    """
    findings = []
    times, width = window.times, window.bucket_ns
    for ep in find_shifts(values, rule, weights):
        start = ep.start
        if onset is not None:
            start = min(start, _onset(onset, ep.detect, reach=rule.current + 5))
        baseline, current = ep.baseline, ep.current
        if report is not None:
            lo = max(0, start - rule.baseline)
            before = report[lo:start]
            after = report[start : ep.detect + 1]
            if np.any(~np.isnan(before)):
                baseline = float(np.nanmedian(before))
            if np.any(~np.isnan(after)):
                current = float(np.nanmedian(after))
        ratio = current / baseline if baseline else float("inf")
        if rule.direction == "down":
            ratio = baseline / current if current else float("inf")
        severity = "warning"
        if critical_ratio is not None and ratio >= critical_ratio:
            severity = "critical"
        findings.append(Finding(
            kind=kind,
            layer=layer,
            signal=signal,
            started_at_ns=int(times[start]),
            detected_at_ns=int(times[ep.detect]) + width,
            baseline=round(baseline, 6),
            current=round(current, 6),
            unit=unit,
            severity=severity,
            summary=f"{signal} of {what}: {format_value(baseline)} -> "
                    f"{format_value(current)} {unit}",
            service=service,
            host=host,
            key=key,
            ended_at_ns=None if ep.end is None else int(times[ep.end]),
        ))
    return findings


def _onset(flags: np.ndarray, detect: int, *, reach: int, max_gap: int = 2) -> int:
    """The first flagged bucket of the streak (gaps of at most *max_gap*) ending at or
    before *detect*, looking back at most *reach* buckets."""
    lo = max(0, detect - reach)
    flagged = np.flatnonzero(flags[lo : detect + 1])
    if not len(flagged):
        return detect
    first = int(flagged[-1])
    for j in flagged[-2::-1]:
        if first - int(j) > max_gap:
            break
        first = int(j)
    return lo + first


def format_value(value: float) -> str:
    if value == 0 or abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"
