"""Multivariate outliers across layers: a seeded IsolationForest per service.

Each service's minute is a point of features from several layers: retrieval p95 (data),
chat p95 and output tokens per request (model), workflow p95 and error rate
(orchestration). A forest fitted on the previous UTC day scores the current day; a run of
minutes stranger than anything in the training day is an ``info`` finding that joins the
service's incident as evidence of an unusual combination (it never opens one alone).
Causal and seeded (``random_state=0``): the same data gives the same findings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
from strata.agent.model import Finding, Layer
from strata.agent.units import DAY_NS
from strata.analytics.baseline import _first_run

if TYPE_CHECKING:
    from strata.agent.store.window import SpanSeries, Window

MIN_RUN = 5
_FEATURES = (("data", "p95"), ("model", "p95"), ("model", "tokens"),
             ("orchestration", "p95"), ("orchestration", "errors"))


def fit_and_score(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Outlier scores of *test* rows (higher = stranger) from a forest fitted on *train*,
    relative to the strangest training row (> 0: stranger than anything seen)."""
    # Imported at the first fit, not with the agent: scikit-learn's ensemble (with the
    # scipy.stats it imports) adds ~70 MiB to the agent, which a stack without a full day of
    # two-layer traffic never needs.
    from sklearn.ensemble import IsolationForest

    center = np.median(train, axis=0)
    scale = np.maximum(np.median(np.abs(train - center), axis=0) * 1.4826, 1e-9)
    forest = IsolationForest(n_estimators=25, random_state=0)  # info only: cheap is enough
    forest.fit((train - center) / scale)
    train_scores = -forest.score_samples((train - center) / scale)
    test_scores = -forest.score_samples((test - center) / scale)
    return np.asarray(test_scores - float(np.max(train_scores)))


def _features(series: list[SpanSeries]) -> tuple[np.ndarray, list[Layer]]:
    columns, layers = [], []
    for layer, what in _FEATURES:
        picked = [s for s in series if s.layer == layer and (
            layer != "orchestration" or s.operation in ("invoke_workflow", "invoke_agent"))]
        if not picked:
            continue
        s = max(picked, key=lambda s: (float(np.sum(s.count)), s.key))
        with np.errstate(invalid="ignore", divide="ignore"):
            if what == "p95":
                col = np.log(np.where(s.count > 0, s.p95_s, np.nan))
            elif what == "tokens":
                col = s.output_tokens / np.where(s.token_count > 0, s.token_count, np.nan)
            else:
                col = np.where(s.count > 0, s.errors / s.count, np.nan)
        columns.append(col)
        layers.append(Layer(layer))
    if not columns:
        return np.empty((0, 0)), []
    return np.column_stack(columns), layers


class MultivariateOutlierDetector:
    """Unusual cross-layer combinations per service (IsolationForest, random_state=0)."""

    kind = "multivariate_anomaly"

    def detect(self, window: Window) -> Iterable[Finding]:
        by_service: dict[str, list[SpanSeries]] = {}
        for s in window.span_series():
            by_service.setdefault(s.service, []).append(s)
        days = window.times // DAY_NS
        for service in sorted(by_service):
            x, layers = _features(by_service[service])
            if x.shape[1] < 2:
                continue
            valid = ~np.any(np.isnan(x), axis=1)
            for day in np.unique(days):
                train = valid & (days == day - 1)
                test = valid & (days == day)
                if train.sum() < 360 or not test.any():
                    continue
                scores = np.full(len(x), -np.inf)
                scores[test] = fit_and_score(x[train], x[test])
                yield from self._runs(window, service, x, layers, scores, train)

    def _runs(self, window: Window, service: str, x: np.ndarray, layers: list[Layer],
              scores: np.ndarray, train: np.ndarray) -> Iterable[Finding]:
        flagged = scores > 0
        offset = 0
        while True:
            start = _first_run(flagged[offset:], MIN_RUN)
            if start is None:
                return
            i = offset + start
            end = i
            while end < len(flagged) and flagged[end]:
                end += 1
            center = np.median(x[train], axis=0)
            scale = np.maximum(np.median(np.abs(x[train] - center), axis=0) * 1.4826, 1e-9)
            current = np.median(x[i : i + MIN_RUN], axis=0)
            top = int(np.argmax(np.abs(current - center) / scale))
            yield Finding(
                kind=self.kind, layer=layers[top], signal="multivariate", unit="1",
                started_at_ns=int(window.times[i]),
                detected_at_ns=int(window.times[i + MIN_RUN - 1]) + window.bucket_ns,
                baseline=round(float(center[top]), 6), current=round(float(current[top]), 6),
                severity="info", service=service, key=f"service:{service}",
                summary=f"unusual combination of signals on {service} "
                        f"(most off: {layers[top]} feature {top})",
                ended_at_ns=int(window.times[end]) if end < len(flagged) else None,
            )
            offset = end
