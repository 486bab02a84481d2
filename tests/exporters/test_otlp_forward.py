"""OTLPForwarder against a real HTTP upstream on 127.0.0.1 (RELIABILITY E1-E4, F3, S9)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from strata.agent.ingest.normalize import IngestPolicy
from strata.agent.ingest.otlp_codec import (
    attributes_of,
    decode_metrics_request,
    decode_trace_request,
)
from strata.agent.model import Sample, SpanRecord
from strata.exporters.base import ExportResult
from strata.exporters.otlp_forward import OTLPForwarder

from tests.exporters.upstream import Received, RecordingUpstream, Reply
from tests.otlp_factory import gauge_request, genai_attributes, make_span, trace_request
from tests.waiting import loose, wait_until

POLICY = IngestPolicy(salt="s")


@dataclass
class Batch:
    spans: list[SpanRecord] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    costs: None = None  # unpriced: the forwarder prices spans itself


def span_batch(n: int, service: str = "rag-api") -> Batch:
    body = trace_request([make_span(attributes=genai_attributes()) for _ in range(n)],
                         {"service.name": service}).SerializeToString()
    return Batch(spans=decode_trace_request(body, is_json=False, policy=POLICY).spans)


def sample_batch(n: int) -> Batch:
    samples = []
    for i in range(n):
        body = gauge_request("DCGM_FI_DEV_GPU_TEMP", 60.0 + i, 1_700_000_000_000_000_000 + i,
                             {"gpu": "0"}).SerializeToString()
        samples += decode_metrics_request(body, is_json=False).samples
    return Batch(samples=samples)


def span_ids(requests: list[Received]) -> list[str]:
    ids = []
    for r in requests:
        if r.path == "/v1/traces":
            msg = ExportTraceServiceRequest()
            msg.ParseFromString(r.body)
            ids += [s.span_id.hex() for rs in msg.resource_spans for ss in rs.scope_spans
                    for s in ss.spans]
    return ids


@pytest.fixture(name="upstream")
def upstream_fixture() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream()
    yield server
    server.stop()


def forwarder(upstream: RecordingUpstream, tmp_path: Path, **kwargs: object) -> OTLPForwarder:
    options: dict[str, object] = {"initial_backoff_s": 0.05, "max_backoff_s": 0.2,
                                  "rng": random.Random(1)}
    options.update(kwargs)
    return OTLPForwarder(upstream.url, tmp_path / "queue", **options)  # type: ignore[arg-type]


def test_forwards_spans_and_points_enriched(upstream: RecordingUpstream, tmp_path: Path) -> None:
    price = lambda spans: [(0.01, "price-table", 0.2, "estimate", 0.1)] * len(spans)  # noqa: E731
    fwd = forwarder(upstream, tmp_path, price=price)
    spans, samples = span_batch(3), sample_batch(2)
    assert fwd.enqueue(spans)
    assert fwd.enqueue(samples)
    wait_until(lambda: len(upstream.received()) == 2, 10, "2 requests")
    fwd.shutdown()
    traces = next(r for r in upstream.requests if r.path == "/v1/traces")
    assert traces.headers["Content-Type"] == "application/x-protobuf"
    assert traces.headers["Content-Encoding"] == "gzip"
    msg = ExportTraceServiceRequest()
    msg.ParseFromString(traces.body)
    attrs = attributes_of(msg.resource_spans[0].scope_spans[0].spans[0].attributes)
    assert attrs["strata.layer"] == "model"
    assert attrs["gen_ai.usage.cost.usd"] == 0.01
    assert attrs["strata.energy.wh"] == 0.2
    metrics = ExportMetricsServiceRequest()
    metrics.ParseFromString(next(r for r in upstream.requests if r.path == "/v1/metrics").body)
    assert len(metrics.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points) == 2
    assert (fwd.stats.sent_spans, fwd.stats.sent_points, fwd.queue_bytes) == (3, 2, 0)


def test_consecutive_batches_are_merged_into_one_request(
    upstream: RecordingUpstream, tmp_path: Path
) -> None:
    fwd = forwarder(upstream, tmp_path, start=False)
    batches = [span_batch(5, service=f"svc-{i}") for i in range(4)]
    for b in batches:
        fwd.enqueue(b)
    assert fwd.send_once() == 0.0
    assert len(upstream.requests) == 1
    assert sorted(span_ids(upstream.requests)) == sorted(s.span_id for b in batches
                                                         for s in b.spans)
    assert fwd.send_once() is None  # empty now
    fwd.shutdown()


def test_upstream_down_then_back_delivers_everything(
    upstream: RecordingUpstream, tmp_path: Path
) -> None:
    upstream.stop()
    fwd = forwarder(upstream, tmp_path)
    sent = [span_batch(10) for _ in range(5)]
    for b in sent:
        assert fwd.enqueue(b)
    wait_until(lambda: fwd.stats.retries >= 2, 5, "two retries")
    assert fwd.stats.last_status is None
    assert fwd.stats.sent_spans == 0
    assert fwd.queue_bytes > 0
    upstream.start()
    expected = sorted(s.span_id for b in sent for s in b.spans)
    wait_until(lambda: sorted(span_ids(upstream.received())) == expected, 10,
               "every span upstream")
    fwd.shutdown()
    assert fwd.stats.sent_spans == 50
    assert fwd.stats.dropped_spans == 0


def test_retry_after_is_honoured(upstream: RecordingUpstream, tmp_path: Path) -> None:
    replies = iter([(503, {"Retry-After": "1"}, b""), (200, {}, b"")])
    upstream.responder = lambda _r: next(replies)
    fwd = forwarder(upstream, tmp_path)
    fwd.enqueue(span_batch(2))
    wait_until(lambda: len(upstream.received()) == 2, 10, "2 requests")
    fwd.shutdown()
    first, second = upstream.requests
    assert second.monotonic - first.monotonic >= 1.0  # not the 0.05 s backoff
    assert span_ids([first]) == span_ids([second])  # the same batch again
    assert fwd.stats.sent_spans == 2
    assert fwd.stats.retries == 1


def test_400_is_dropped_counted_and_not_retried(
    upstream: RecordingUpstream, tmp_path: Path
) -> None:
    upstream.responder = lambda _r: (400, {}, b"bad")
    fwd = forwarder(upstream, tmp_path)
    fwd.enqueue(span_batch(4))
    wait_until(lambda: len(upstream.received()) == 1, 10, "a request")
    wait_until(lambda: fwd.stats.dropped_spans, 5, "the dropped batch")
    time.sleep(0.3)  # longer than the whole backoff schedule: a retry would show up here
    fwd.shutdown()
    assert len(upstream.requests) == 1
    assert fwd.stats.dropped_spans == 4
    assert fwd.stats.last_status == 400
    assert fwd.queue_bytes == 0


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_statuses(upstream: RecordingUpstream, tmp_path: Path, status: int) -> None:
    replies = iter([(status, {}, b""), (status, {}, b""), (200, {}, b"")])
    upstream.responder = lambda _r: next(replies)
    fwd = forwarder(upstream, tmp_path)
    fwd.enqueue(span_batch(1))
    wait_until(lambda: len(upstream.received()) == 3, 10, "3 requests")
    fwd.shutdown()
    assert fwd.stats.sent_spans == 1
    assert fwd.stats.retries == 2


def test_partial_success_is_counted(upstream: RecordingUpstream, tmp_path: Path) -> None:
    response = ExportTraceServiceResponse()
    response.partial_success.rejected_spans = 2
    upstream.responder = lambda _r: (200, {}, response.SerializeToString())
    fwd = forwarder(upstream, tmp_path)
    fwd.enqueue(span_batch(5))
    wait_until(lambda: len(upstream.received()) == 1, 10, "a request")
    fwd.shutdown()
    assert fwd.stats.rejected_upstream == 2
    assert fwd.stats.sent_spans == 5


def test_slow_upstream_never_slows_enqueue(upstream: RecordingUpstream, tmp_path: Path) -> None:
    release = threading.Event()

    def slow(_request: Received) -> Reply:
        release.wait(30)
        return 200, {}, b""

    upstream.responder = slow
    fwd = forwarder(upstream, tmp_path, timeout_s=60)
    fwd.enqueue(span_batch(1))
    wait_until(lambda: len(upstream.received()) == 1, 10, "a request")  # the sender is stuck
    batch = span_batch(200)
    started = time.perf_counter()
    for _ in range(20):
        assert fwd.enqueue(batch)
    per_call = (time.perf_counter() - started) / 20
    release.set()
    wait_until(lambda: len(span_ids(upstream.received())) >= 1 + 20 * 200, 10,
               "every span upstream")
    fwd.shutdown()
    assert per_call < loose(0.25), per_call  # encode + fsync'd append, not the 30 s request


def test_full_queue_refuses_and_counts(upstream: RecordingUpstream, tmp_path: Path) -> None:
    upstream.stop()
    fwd = forwarder(upstream, tmp_path, max_queue_bytes=3_000, start=False)
    results = [fwd.enqueue(span_batch(10)) for _ in range(10)]
    assert not all(results)
    assert any(results)
    assert fwd.stats.enqueue_failed == results.count(False)
    assert fwd.stats.enqueue_failed_spans == 10 * results.count(False)
    assert fwd.export([span_batch(10)]) is ExportResult.FAILURE
    assert fwd.queue_bytes <= 3_000
    fwd.shutdown()


def test_queue_survives_a_restart(upstream: RecordingUpstream, tmp_path: Path) -> None:
    upstream.stop()
    first = forwarder(upstream, tmp_path, start=False)
    batches = [span_batch(7) for _ in range(3)]
    assert first.export(batches) is ExportResult.SUCCESS
    first.shutdown()
    first.shutdown()  # idempotent
    upstream.start()
    second = forwarder(upstream, tmp_path)
    expected = sorted(s.span_id for b in batches for s in b.spans)
    wait_until(lambda: sorted(span_ids(upstream.received())) == expected, 10,
               "every span upstream")
    second.shutdown()


def test_large_response_body_is_cut(upstream: RecordingUpstream, tmp_path: Path) -> None:
    upstream.responder = lambda _r: (200, {}, b"\x00" * (8 * 1024 * 1024))
    fwd = forwarder(upstream, tmp_path, max_response_bytes=1024, start=False)
    fwd.enqueue(span_batch(1))
    assert fwd.send_once() == 0.0
    assert fwd.stats.sent_spans == 1
    fwd.shutdown()


def test_backoff_doubles_with_jitter_and_caps(tmp_path: Path) -> None:
    fwd = OTLPForwarder("http://127.0.0.1:9", tmp_path, initial_backoff_s=1.0,
                        max_backoff_s=30.0, rng=random.Random(0), start=False)
    delays = []
    for failures in range(1, 9):
        fwd._failures = failures
        delays.append(fwd._backoff())
    for n, delay in enumerate(delays):
        base = min(2.0**n, 30.0)
        assert 0.5 * base <= delay <= min(1.5 * base, 30.0)
    assert len(set(delays)) == len(delays)  # jittered
    fwd.shutdown()

