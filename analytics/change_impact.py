"""Change awareness: did a deployment move its service's signals?

For each deployment (a new ``service.version``, a new model, or an explicit marker) the
per-minute values of the service's request signals in the hour before are compared with the
half hour after by a one-sided Mann-Whitney U test. A significant move for the worse gives an
``info`` Finding of kind ``deployment`` (never an incident on its own); root cause uses it to
blame the change, and a deploy that changes nothing yields nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import mannwhitneyu  # type: ignore[import-untyped]
from strata.agent.model import Deployment, Finding, Layer

if TYPE_CHECKING:
    from strata.agent.store.window import SpanSeries, Window

BEFORE_BUCKETS = 60
AFTER_BUCKETS = 30
MIN_AFTER = 5
P_VALUE = 1e-3
MIN_RATIO = 1.3


@dataclass(frozen=True, slots=True)
class Change:
    """Deployment records of one service at one instant, merged (version and model)."""

    service: str
    time_ns: int
    version: str | None
    previous_version: str | None
    model: str | None
    previous_model: str | None
    source: str

    @property
    def signal(self) -> str:
        return "deployment" if self.previous_version or self.source == "explicit" \
            else "model_change"

    def describe(self) -> str:
        parts = []
        if self.previous_version and self.version:
            parts.append(f"{self.previous_version} -> {self.version}")
        if self.previous_model and self.model:
            parts.append(f"model {self.previous_model} -> {self.model}")
        return f"{self.service} " + (", ".join(parts) or (self.version or "deploy"))


def merge_changes(deployments: Sequence[Deployment], bucket_ns: int) -> list[Change]:
    """Merge a service's version and model records in the same bucket into one Change;
    first sightings (no previous version or model, not explicit) are not changes."""
    merged: dict[tuple[str, int], Change] = {}
    for d in sorted(deployments, key=lambda d: (d.time_unix_nano, d.service, d.source)):
        if d.previous_version is None and d.previous_model is None and d.source != "explicit":
            continue
        key = (d.service, d.time_unix_nano // bucket_ns)
        old = merged.get(key)
        if old is None:
            merged[key] = Change(d.service, d.time_unix_nano, d.version, d.previous_version,
                                 d.model, d.previous_model, d.source)
        else:
            merged[key] = Change(
                old.service, min(old.time_ns, d.time_unix_nano), old.version or d.version,
                old.previous_version or d.previous_version, old.model or d.model,
                old.previous_model or d.previous_model,
                "service.version" if "service.version" in (old.source, d.source) else old.source,
            )
    return list(merged.values())


def _signals(s: SpanSeries) -> Iterable[tuple[str, np.ndarray, str]]:
    with np.errstate(invalid="ignore", divide="ignore"):
        tc = np.where(s.token_count > 0, s.token_count, np.nan)
        yield "latency.p95", np.where(s.count > 0, s.p95_s, np.nan), "s"
        yield "latency.p50", np.where(s.count > 0, s.p50_s, np.nan), "s"
        if np.any(s.token_count > 0):
            yield "tokens.output_per_request", s.output_tokens / tc, "{token}"
            yield "cost_per_request", s.cost_usd / tc, "USD"


class DeploymentImpactDetector:
    """Mann-Whitney U before/after each deployment, per signal of the deployed service."""

    kind = "deployment"

    def detect(self, window: Window) -> Iterable[Finding]:
        series_by_service: dict[str, list[SpanSeries]] = {}
        for s in window.span_series():
            series_by_service.setdefault(s.service, []).append(s)
        for change in merge_changes(window.deployments(), window.bucket_ns):
            i = (change.time_ns - window.start_ns) // window.bucket_ns
            if i < BEFORE_BUCKETS // 2 or i >= window.n_buckets - MIN_AFTER - 1:
                continue
            best = self._strongest(series_by_service.get(change.service, []), int(i))
            if best is None:
                continue
            ratio, layer, signal, before, after, unit, n_after = best
            detected = window.times[min(int(i) + 1 + n_after, window.n_buckets - 1)]
            yield Finding(
                kind=self.kind, layer=layer, signal=change.signal,
                started_at_ns=int(change.time_ns), detected_at_ns=int(detected),
                baseline=round(before, 6), current=round(after, 6), unit=unit,
                severity="info",
                summary=f"{change.describe()}: {signal} x{ratio:.2f} (Mann-Whitney U)",
                service=change.service,
                key=f"deploy:{change.service}|{change.version or ''}|{change.model or ''}"
                    f"|{change.time_ns}",
            )

    @staticmethod
    def _strongest(
        series: list[SpanSeries], i: int
    ) -> tuple[float, Layer, str, float, float, str, int] | None:
        best = None
        for s in series:
            for signal, values, unit in _signals(s):
                before = values[max(0, i - BEFORE_BUCKETS) : i]
                after = values[i + 1 : i + 1 + AFTER_BUCKETS]
                before, after = before[~np.isnan(before)], after[~np.isnan(after)]
                if len(before) < 10 or len(after) < MIN_AFTER:
                    continue
                b, a = float(np.median(before)), float(np.median(after))
                if b <= 0 or a / b < MIN_RATIO:
                    continue
                p = float(mannwhitneyu(after, before, alternative="greater").pvalue)
                if p >= P_VALUE:
                    continue
                candidate = (a / b, Layer(s.layer), signal, b, a, unit,
                             len(values[i + 1 : i + 1 + AFTER_BUCKETS]))
                if best is None or candidate[0] > best[0]:
                    best = candidate
        return best
