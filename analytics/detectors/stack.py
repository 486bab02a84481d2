"""Serving and data-layer detectors: queue growth, KV-cache saturation, time to first token,
vector-DB segment explosion and query latency, as rows of one table.

Serving series are per server instance (host x exporting service); vector-DB series per
collection shard (host x labels).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class SampleShiftDetector:
    """A shift rule applied to every series of some metrics: the detectors that differ only
    in data (which metrics, which rule, how the entity is named) are rows of ``STACK_RULES``.

    Args:
        kind: the findings' kind.
        names: canonical metric names read (one series per host x source x labels).
        rule: when a change of level is a shift.
        layer, signal, unit: copied into each finding.
        entity: "server" (serving engine instance) or "shard" (vector-DB collection shard).
        critical_ratio: current/baseline from which a finding is critical.
    """

    kind: str
    names: tuple[str, ...]
    rule: ShiftRule
    layer: Layer
    signal: str
    unit: str
    entity: str
    critical_ratio: float | None = None

    def detect(self, window: Window) -> Iterable[Finding]:
        for s in window.sample_series(list(self.names)):
            if self.entity == "server":
                key, what = _server_key(s), _server(s)
            else:
                key, what = _shard_key(s) + _SHARD_SUFFIX.get(self.signal, ""), _shard(s)
            yield from shift_findings(
                window, s.mean, self.rule, kind=self.kind, layer=self.layer,
                signal=self.signal, unit=self.unit, key=key, what=what, host=s.host,
                critical_ratio=self.critical_ratio,
            )


_SHARD_SUFFIX = {"vectordb.query.latency": "|latency"}
_FAST = {"current": 3, "min_points": 2, "recover": 3}

STACK_DETECTORS = (
    # KV-cache usage of a serving engine pinned near full
    SampleShiftDetector(
        "serving_saturation", ("serving.kv_cache.usage",),
        ShiftRule(direction="up", ratio=1.0, z=4.0, min_delta=0.15, floor=0.9, **_FAST),
        Layer.SERVING, "serving.kv_cache.usage", "1", "server"),
    # requests waiting in a serving engine's queue growing well past their usual level
    SampleShiftDetector(
        "serving_saturation", ("serving.requests.waiting", "serving.queue_depth"),
        ShiftRule(direction="up", ratio=3.0, z=4.0, min_delta=6.0, floor=8.0, **_FAST),
        Layer.SERVING, "serving.requests.waiting", "{request}", "server", critical_ratio=10.0),
    # time to first token of a serving engine doubled or more
    SampleShiftDetector(
        "latency_regression", ("serving.ttft", "serving.ttft.p95"),
        ShiftRule(direction="up", ratio=2.0, z=4.0, min_delta=0.05, **_FAST),
        Layer.SERVING, "serving.ttft", "s", "server"),
    # segments per vector-DB shard doubling (compaction falling behind)
    SampleShiftDetector(
        "vectordb_degradation",
        ("vectordb.segments", "vectordb.shard.segments", "vectordb.segments.active"),
        ShiftRule(direction="up", ratio=2.0, z=4.0, min_delta=8.0, **_FAST),
        Layer.DATA, "vectordb.segments", "{segment}", "shard"),
    # vector-DB query latency up by 80% or more
    SampleShiftDetector(
        "vectordb_degradation",
        ("vectordb.query.latency", "vectordb.request.latency", "vectordb.query.latency.p95",
         "vectordb.request.latency.p95"),
        ShiftRule(direction="up", ratio=1.8, z=4.0, min_delta=0.002, **_FAST),
        Layer.DATA, "vectordb.query.latency", "s", "shard"),
)
