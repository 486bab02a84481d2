"""Tests for analytics.correlate: which samples describe a span, and their summaries."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from strata.agent.model import AttributeValue, Layer, Sample, SpanRecord
from strata.analytics.correlate import (
    correlate_spans,
    correlation_hosts,
    correlation_targets,
    rank_moves,
)

S = 1_000_000_000
T0 = 1_700_000_000 * S
GPU_A = "GPU-aaaaaaaa-0000-0000-0000-000000000001"
GPU_B = "GPU-bbbbbbbb-0000-0000-0000-000000000002"


def _span(
    span_id: str,
    start_s: float,
    end_s: float,
    *,
    layer: Layer = Layer.SERVING,
    host: str | None = "gpu-node-1",
    model: str | None = "llama-3.1-8b-instruct",
    attributes: Mapping[str, AttributeValue] | None = None,
) -> SpanRecord:
    return SpanRecord(
        trace_id="f" * 32, span_id=span_id.rjust(16, "0"), parent_span_id=None, name=span_id,
        kind="client", start_unix_nano=T0 + int(start_s * S), end_unix_nano=T0 + int(end_s * S),
        status="ok", service="rag-api", layer=layer, request_model=model, host=host,
        attributes=attributes or {},
    )  # fmt: skip


def _gauge(
    canonical: str, value: float, t_s: float, *, layer: Layer = Layer.INFRASTRUCTURE,
    host: str = "gpu-node-1", device: str | None = GPU_A, service: str | None = None,
    labels: Mapping[str, str] | None = None, unit: str = "1",
) -> Sample:
    return Sample(canonical, value, unit, layer, T0 + int(t_s * S), labels or {}, canonical,
                  host, device, service)


def _signals(found: Mapping[tuple[str, str], tuple[object, ...]], span: SpanRecord) -> set[tuple]:
    return {(s.signal, s.host, s.device, tuple(sorted(s.labels.items())))  # type: ignore[attr-defined]
            for s in found[(span.trace_id, span.span_id)]}


def test_gpu_span_gets_only_its_gpu_on_its_host() -> None:
    """A span tagged with GPU A sees GPU A's samples, not GPU B's nor another host's GPU A."""
    span = _span("1", 10, 12, attributes={"gpu.uuid": GPU_A})
    samples = [
        _gauge("gpu.utilization", 80, 9, unit="%"),
        _gauge("gpu.utilization", 90, 11, unit="%"),
        _gauge("gpu.utilization", 70, 14, unit="%"),
        _gauge("gpu.utilization", 5, 11, device=GPU_B, unit="%"),
        _gauge("gpu.utilization", 1, 11, host="gpu-node-2", unit="%"),
        _gauge("gpu.temperature", 71, 11, unit="Cel"),
    ]
    found = correlate_spans([span], samples)
    summaries = {s.signal: s for s in found[(span.trace_id, span.span_id)]}
    assert set(summaries) == {"gpu.temperature", "gpu.utilization"}
    util = summaries["gpu.utilization"]
    assert (util.host, util.device, util.count) == ("gpu-node-1", GPU_A, 3)
    assert (util.min, util.max, util.mean, util.last) == (70, 90, 80, 70)


def test_bracketing_readings_only_within_pad() -> None:
    """Readings just before and after a short span describe it; ones beyond the pad do not."""
    span = _span("1", 100, 101, attributes={"gpu.id": GPU_A})
    samples = [_gauge("gpu.power.draw", v, t, unit="W")
               for t, v in ((20, 100.0), (95, 200.0), (105, 300.0), (200, 400.0))]
    [power] = correlate_spans([span], samples, pad_ns=30 * S)[(span.trace_id, span.span_id)]
    assert (power.count, power.min, power.max) == (2, 200.0, 300.0)


def test_energy_counter_summary_has_increase_with_reset() -> None:
    """The energy counter's delta is its increase; a drop counts as a reset."""
    span = _span("1", 0, 30, attributes={"gpu.uuid": GPU_A})
    samples = [_gauge("gpu.energy.consumed", v, t, unit="mJ")
               for t, v in ((0, 1000.0), (10, 3000.0), (20, 500.0), (30, 1500.0))]
    [energy] = correlate_spans([span], samples)[(span.trace_id, span.span_id)]
    assert energy.delta == 2000.0 + 500.0 + 1000.0


def test_serving_samples_of_the_called_server_and_model() -> None:
    """A chat span sees its server's queue and KV cache, for its model only."""
    span = _span("1", 10, 12, host="app-1", attributes={"server.address": "vllm-a"})
    samples = [
        _gauge("serving.requests.waiting", 3, 11, layer=Layer.SERVING, host="gpu-node-1",
               device=None, service="vllm-a", unit="{request}"),
        _gauge("serving.kv_cache.usage", 0.5, 11, layer=Layer.SERVING, host="vllm-a",
               device="llama-3.1-8b-instruct", service="vllm-scrape"),
        _gauge("serving.kv_cache.usage", 0.9, 11, layer=Layer.SERVING, host="vllm-a",
               device="other-model", service="vllm-scrape"),
        _gauge("serving.requests.waiting", 9, 11, layer=Layer.SERVING, host="gpu-node-1",
               device=None, service="vllm-b", unit="{request}"),
    ]
    found = correlate_spans([span], samples)
    assert _signals(found, span) == {
        ("serving.kv_cache.usage", "vllm-a", "llama-3.1-8b-instruct", ()),
        ("serving.requests.waiting", "gpu-node-1", None, ()),
    }


def test_retrieval_span_gets_its_shard_only() -> None:
    """A retrieval span sees its collection and shard on its DB host; other shards, other
    collections and another host with the same shard are ignored."""
    span = _span("1", 10, 11, layer=Layer.DATA, host="app-1", model=None, attributes={
        "db.system.name": "milvus", "db.collection.name": "docs", "db.shard": "1",
        "server.address": "milvus-0",
    })
    samples = [
        _gauge("vectordb.segments", 12, 10.5, layer=Layer.DATA, host="milvus-0", device=None,
               labels={"collection_name": "docs", "shard": "1"}),
        _gauge("vectordb.segments", 40, 10.5, layer=Layer.DATA, host="milvus-0", device=None,
               labels={"collection_name": "docs", "shard": "0"}),
        _gauge("vectordb.segments", 41, 10.5, layer=Layer.DATA, host="milvus-0", device=None,
               labels={"collection_name": "faq", "shard": "1"}),
        _gauge("vectordb.segments", 42, 10.5, layer=Layer.DATA, host="milvus-1", device=None,
               labels={"collection_name": "docs", "shard": "1"}),
        _gauge("vectordb.query.latency", 0.012, 10.5, layer=Layer.DATA, host="milvus-0",
               device=None, labels={}),
        _gauge("vectordb.shard.segments", 7, 10.5, layer=Layer.DATA, host="qdrant-0",
               device="docs/1", service="milvus-0"),
        _gauge("vectordb.shard.segments", 8, 10.5, layer=Layer.DATA, host="qdrant-0",
               device="docs/2", service="milvus-0"),
    ]
    found = correlate_spans([span], samples)
    values = sorted((s.signal, s.mean) for s in found[(span.trace_id, span.span_id)])
    assert values == [("vectordb.query.latency", 0.012), ("vectordb.segments", 12.0),
                      ("vectordb.shard.segments", 7.0)]


def test_untagged_span_gets_no_gpu_and_hosts_cover_targets() -> None:
    """A span without a GPU tag gets no GPU samples; correlation_hosts lists what to read."""
    span = _span("1", 10, 12, attributes={"server.address": "vllm-a"})
    found = correlate_spans([span], [_gauge("gpu.utilization", 50, 11, unit="%")])
    assert found[(span.trace_id, span.span_id)] == ()
    tagged = _span("2", 0, 1, host="h", attributes={"gpu.uuid": [GPU_A, GPU_B]})
    assert correlation_targets(tagged).gpus == {("h", GPU_A), ("h", GPU_B)}
    assert correlation_hosts([correlation_targets(span), correlation_targets(tagged)]) == {
        "gpu-node-1", "vllm-a", "h"}


def test_rank_moves_orders_by_relative_change() -> None:
    """The series that moved most between the halves comes first; flat ones last."""
    moves = rank_moves([[1.0, 1.0, 1.0, 1.0], [10.0, 10.0, 30.0, 30.0], [2.0, None, 3.0, 3.0],
                        [4.0, 4.0, 3.0, 3.0]], min_points=1)
    assert [m.index for m in moves] == [1, 2, 3, 0]
    assert moves[0].relative_change == pytest.approx(2.0)
