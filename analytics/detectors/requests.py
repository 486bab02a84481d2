"""Request-level regression detectors: latency, errors, tokens, cost, throughput.

Each runs per span group (service x operation x model x span name) on the window's
per-minute statistics. Per-request signals (p95 latency, error rate, tokens and cost per
request) are what they judge, so a traffic surge that keeps per-request cost flat is not a
cost regression; throughput is judged only for collapses. Infrastructure, serving and data
detectors live in ``strata.analytics.detectors.gpu`` and ``strata.analytics.detectors.stack``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from strata.agent.model import Finding, Layer
from strata.analytics.base import shift_findings
from strata.analytics.baseline import ShiftRule

if TYPE_CHECKING:
    from strata.agent.store.window import SpanSeries, Window

ROOT_OPERATIONS = frozenset({"invoke_workflow", "invoke_agent", "workflow"})
MIN_REQUESTS_PER_BUCKET = 0.5  # median traffic below this is too thin to judge
MIN_REQUESTS_FOR_DROPS = 5.0  # P(no request in 3 of 5 minutes) is small only from here


def _what(s: SpanSeries) -> str:
    return f"{s.name} on {s.service}"


def _busy(s: SpanSeries, per_bucket: float = MIN_REQUESTS_PER_BUCKET) -> bool:
    return float(np.median(s.count)) >= per_bucket if len(s.count) else False


def _rolling_sum(values: np.ndarray, width: int) -> np.ndarray:
    cs = np.concatenate([[0.0], np.cumsum(values)])
    out = cs[width:] - cs[:-width]
    return np.concatenate([cs[1:width], out])


class LatencyRegressionDetector:
    """p50 or p95 latency of a span group up by 50% or more, sustained for minutes."""

    kind = "latency_regression"
    rule = ShiftRule(direction="up", ratio=1.5, z=3.5, min_delta=0.05, current=7, min_points=3,
                     min_weight=20)
    # a per-minute p95 of a few requests is their maximum, and the window's median of such
    # maxima rests on a handful of slow requests: p95 is judged only with 60+ requests in
    # the window (its top 3); thinner groups are judged on medians (p50, pooled detector)
    p95_rule = replace(rule, min_weight=60)

    def detect(self, window: Window) -> Iterable[Finding]:
        for s in window.span_series():
            if not _busy(s):
                continue
            for signal, values, rule in (("latency.p95", s.p95_s, self.p95_rule),
                                         ("latency.p50", s.p50_s, self.rule)):
                yield from shift_findings(
                    window, np.where(s.count > 0, values, np.nan), rule, kind=self.kind,
                    layer=Layer(s.layer), signal=signal, unit="s", key=f"span:{s.key}",
                    what=_what(s), service=s.service, critical_ratio=3.0,
                    weights=s.count - s.errors,
                )


class ErrorSpikeDetector:
    """Error rate of a span group up by at least eight points, with four or more errors.

    The rate is pooled over the last five minutes with three errors of slack taken off, so a
    few failed requests in a quiet minute are not a spike.
    """

    kind = "error_spike"
    pool = 5
    slack = 3.0
    rule = ShiftRule(direction="up", ratio=1.0, z=3.0, min_delta=0.08, floor=0.08, current=2,
                     min_points=2)

    def detect(self, window: Window) -> Iterable[Finding]:
        for s in window.span_series():
            if not _busy(s):
                continue
            n = _rolling_sum(s.count, self.pool)
            e = _rolling_sum(s.errors, self.pool)
            with np.errstate(invalid="ignore", divide="ignore"):
                slack = np.where(n > 0, np.maximum(e - self.slack, 0.0) / n, np.nan)
                rate = np.where(n > 0, e / n, np.nan)
            yield from shift_findings(
                window, slack, self.rule, kind=self.kind, layer=Layer(s.layer),
                signal="error_rate", unit="1", key=f"span:{s.key}", what=_what(s),
                service=s.service, report=rate, critical_ratio=20.0,
                onset=(s.errors > 0) & (s.errors >= self.rule.floor * s.count),
            )


class TokenSpikeDetector:
    """Output (or input) tokens per request of a model span group up by 60% or more."""

    kind = "token_spike"
    rule = ShiftRule(direction="up", ratio=1.6, z=4.0, min_delta=20.0, current=7, min_points=3,
                     min_weight=10)

    def detect(self, window: Window) -> Iterable[Finding]:
        for s in window.span_series():
            if s.layer != Layer.MODEL or not _busy(s) or not np.any(s.token_count > 0):
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                tc = np.where(s.token_count > 0, s.token_count, np.nan)
                out = s.output_tokens / tc
                inp = s.input_tokens / tc
            for signal, values in (("tokens.output_per_request", out),
                                   ("tokens.input_per_request", inp)):
                yield from shift_findings(
                    window, values, self.rule, kind=self.kind, layer=Layer.MODEL,
                    signal=signal, unit="{token}", key=f"span:{s.key}", what=_what(s),
                    service=s.service, critical_ratio=4.0, weights=s.token_count,
                )


class CostRegressionDetector:
    """Cost per request of a model span group up by 50% or more (NaN where unpriced)."""

    kind = "cost_regression"
    rule = ShiftRule(direction="up", ratio=1.5, z=4.0, min_delta=0.0, current=7, min_points=3,
                     min_weight=10)

    def detect(self, window: Window) -> Iterable[Finding]:
        for s in window.span_series():
            if s.layer != Layer.MODEL or not _busy(s) or np.all(np.isnan(s.cost_usd)):
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                per_request = s.cost_usd / np.where(s.token_count > 0, s.token_count, np.nan)
            yield from shift_findings(
                window, per_request, self.rule, kind=self.kind, layer=Layer.MODEL,
                signal="cost_per_request", unit="USD", key=f"span:{s.key}", what=_what(s),
                service=s.service, critical_ratio=3.0, weights=s.token_count,
            )


class ThroughputDropDetector:
    """Requests per minute into a service's root spans down to a third or less."""

    kind = "traffic_drop"
    rule = ShiftRule(direction="down", ratio=3.0, z=4.0, min_delta=1.0, current=5,
                     min_points=3)

    def detect(self, window: Window) -> Iterable[Finding]:
        for s in window.span_series():
            # a few requests a minute have minutes without any by chance (Poisson gaps)
            if s.operation not in ROOT_OPERATIONS or not _busy(s, MIN_REQUESTS_FOR_DROPS):
                continue
            yield from shift_findings(
                window, s.count.astype(float), self.rule, kind=self.kind,
                layer=Layer(s.layer), signal="throughput", unit="{request}/min",
                key=f"span:{s.key}", what=_what(s), service=s.service,
            )


SPAN_DETECTORS = (
    LatencyRegressionDetector(),
    ErrorSpikeDetector(),
    TokenSpikeDetector(),
    CostRegressionDetector(),
    ThroughputDropDetector(),
)
