"""Serving and data-layer detectors: queue growth, KV-cache saturation, time to first token,
vector-DB segment explosion and query latency.

Serving series are per server instance (host x exporting service); vector-DB series per
collection shard (host x labels).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from strata.agent.model import Finding, Layer
from strata.analytics.base import shift_findings
from strata.analytics.baseline import ShiftRule

if TYPE_CHECKING:
    from strata.agent.store.window import SampleSeries, Window


def _server(s: SampleSeries) -> str:
    return f"{s.source or 'server'} on {s.host or '?'}"


def _server_key(s: SampleSeries) -> str:
    return f"server:{s.host or ''}|{s.source or ''}|{s.device or ''}"


def _shard(s: SampleSeries) -> str:
    collection = s.labels.get("collection_name") or s.labels.get("collection") or \
        s.labels.get("class_name") or "?"
    shard = s.labels.get("shard") or s.labels.get("shard_name")
    where = f"collection {collection}" + (f" shard {shard}" if shard else "")
    return f"{where} on {s.host or '?'}"


def _shard_key(s: SampleSeries) -> str:
    return f"vectordb:{s.host or ''}|{_shard(s)}"


class KVCacheSaturationDetector:
    """KV-cache usage of a serving engine pinned near full."""

    kind = "serving_saturation"
    rule = ShiftRule(direction="up", ratio=1.0, z=4.0, min_delta=0.15, floor=0.9, current=3,
                     min_points=2, recover=3)

    def detect(self, window: Window) -> Iterable[Finding]:
        for s in window.sample_series(["serving.kv_cache.usage"]):
            yield from shift_findings(
                window, s.mean, self.rule, kind=self.kind, layer=Layer.SERVING,
                signal="serving.kv_cache.usage", unit="1", key=_server_key(s), what=_server(s),
                host=s.host,
            )


class ServingQueueDetector:
    """Requests waiting in a serving engine's queue growing well past their usual level."""

    kind = "serving_saturation"
    rule = ShiftRule(direction="up", ratio=3.0, z=4.0, min_delta=6.0, floor=8.0, current=3,
                     min_points=2, recover=3)

    def detect(self, window: Window) -> Iterable[Finding]:
        for s in window.sample_series(["serving.requests.waiting", "serving.queue_depth"]):
            yield from shift_findings(
                window, s.mean, self.rule, kind=self.kind, layer=Layer.SERVING,
                signal="serving.requests.waiting", unit="{request}", key=_server_key(s),
                what=_server(s), host=s.host, critical_ratio=10.0,
            )


class TTFTRegressionDetector:
    """Time to first token of a serving engine doubled or more."""

    kind = "latency_regression"
    rule = ShiftRule(direction="up", ratio=2.0, z=4.0, min_delta=0.05, current=3, min_points=2,
                     recover=3)

    def detect(self, window: Window) -> Iterable[Finding]:
        for s in window.sample_series(["serving.ttft", "serving.ttft.p95"]):
            yield from shift_findings(
                window, s.mean, self.rule, kind=self.kind, layer=Layer.SERVING,
                signal="serving.ttft", unit="s", key=_server_key(s), what=_server(s),
                host=s.host,
            )


class VectorDBSegmentDetector:
    """Segments per vector-DB shard doubling (compaction falling behind)."""

    kind = "vectordb_degradation"
    rule = ShiftRule(direction="up", ratio=2.0, z=4.0, min_delta=8.0, current=3, min_points=2,
                     recover=3)

    def detect(self, window: Window) -> Iterable[Finding]:
        names = ["vectordb.segments", "vectordb.shard.segments", "vectordb.segments.active"]
        for s in window.sample_series(names):
            yield from shift_findings(
                window, s.mean, self.rule, kind=self.kind, layer=Layer.DATA,
                signal="vectordb.segments", unit="{segment}", key=_shard_key(s),
                what=_shard(s), host=s.host,
            )


class VectorDBLatencyDetector:
    """Vector-DB query latency up by 80% or more."""

    kind = "vectordb_degradation"
    rule = ShiftRule(direction="up", ratio=1.8, z=4.0, min_delta=0.002, current=3,
                     min_points=2, recover=3)

    def detect(self, window: Window) -> Iterable[Finding]:
        names = ["vectordb.query.latency", "vectordb.request.latency",
                 "vectordb.query.latency.p95", "vectordb.request.latency.p95"]
        for s in window.sample_series(names):
            yield from shift_findings(
                window, s.mean, self.rule, kind=self.kind, layer=Layer.DATA,
                signal="vectordb.query.latency", unit="s", key=_shard_key(s) + "|latency",
                what=_shard(s), host=s.host,
            )


STACK_DETECTORS = (
    KVCacheSaturationDetector(),
    ServingQueueDetector(),
    TTFTRegressionDetector(),
    VectorDBSegmentDetector(),
    VectorDBLatencyDetector(),
)
