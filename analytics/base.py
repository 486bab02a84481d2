"""The Detector protocol, and the helper that turns shift episodes into Findings.

A detector is one verb: ``detect(window) -> Iterable[Finding]``. The window is a read-only,
event-time view (``agent.window.Window``); detectors never read the clock or the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

import numpy as np

from agent.model import Finding, Layer
from analytics.baseline import ShiftRule, find_shifts

if TYPE_CHECKING:
    from agent.window import Window

SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}


class Detector(Protocol):
    """Finds regressions of one kind in a window of telemetry."""

    kind: str

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
    """
    findings = []
    times, width = window.times, window.bucket_ns
    for ep in find_shifts(values, rule):
        baseline, current = ep.baseline, ep.current
        if report is not None:
            lo = max(0, ep.start - rule.baseline)
            before = report[lo : ep.start]
            after = report[ep.start : ep.detect + 1]
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
            started_at_ns=int(times[ep.start]),
            detected_at_ns=int(times[ep.detect]) + width,
            baseline=round(baseline, 6),
            current=round(current, 6),
            unit=unit,
            severity=severity,
            summary=f"{signal} of {what}: {_fmt(baseline)} -> {_fmt(current)} {unit}",
            service=service,
            host=host,
            key=key,
            ended_at_ns=None if ep.end is None else int(times[ep.end]),
        ))
    return findings


def _fmt(value: float) -> str:
    if value == 0 or abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"
